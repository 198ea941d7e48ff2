#!/usr/bin/env bash
# Trains MOTR with configs/default.py on whatever JAX accelerators this machine has
# (GPU/TPU; falls back to CPU), or with the --config=FILE given. Extra flags pass through, e.g.
#   scripts/train.sh --workdir=workdirs/default --config.data.synth_root=data/synth --config.batch_size=64
# Multi-host (GPU clusters, TPU pods): run it on every host with --config.distributed=True.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python
[ -x .venv/bin/python ] && PY=.venv/bin/python
case " $* " in *" --workdir="*) ;; *) set -- --workdir=workdirs/default "$@" ;; esac
case " $* " in *" --config="*) ;; *) set -- --config=configs/default.py "$@" ;; esac
exec "$PY" -m mottr.train "$@"
