#!/usr/bin/env bash
# Creates .venv, installs the pinned requirements (CPU; no TensorFlow) and mottr itself
# (pip install -e .: mottr, data_prep and configs importable from anywhere, console scripts
# mottr-infer, mottr-evaluate, mottr-demo, mottr-train, mottr-export, mottr-validate).
# trackeval is installed --no-deps: its declared dependencies pin an old numpy, yet it works with numpy 2.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -r requirements.txt
.venv/bin/pip install -q --no-deps trackeval==1.3.0
.venv/bin/pip install -q --no-deps -e .
