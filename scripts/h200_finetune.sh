#!/usr/bin/env bash
# One accelerator session (an H200 lent through the device tool): benchmark training, fine-tune
# configs/gpu_finetune.py for as many steps as fit before DEADLINE_S, export the model.
#   scripts/h200_finetune.sh      (repo root; .whl/ = carried wheels, gpu_carry/stroma/frames/train = real frames)
# Env: OUT (results, default outputs/h200), DEADLINE_S (seconds from start by which the export must be
# written, default 540: a device call ends at 600 s and its workdir is not kept), EXTRA (more --config
# overrides; the CPU rehearsal shrinks the batch with it). Writes bench_*.txt, train.log and model/ under OUT.
# Training is stopped by SIGTERM at the deadline if it runs long; train.py then saves a checkpoint.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/h200}
DEADLINE=${DEADLINE_S:-540}
COMPILE_S=75  # first step of the training run (compilation, workers starting), measured 62 s on an H200
EXPORT_S=30
CONFIG=configs/gpu_finetune.py
WORKDIR=workdirs/gpu_finetune
DATA="--config.data.synth_root=data/synth --config.data.real_root=gpu_carry/stroma"
EXTRA=${EXTRA:-}
t0=$(date +%s)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ ! -x .venv/bin/python ]; then  # the device machine: its python3 has jax (CUDA); the rest comes as wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  mkdir -p .venv/bin && printf '#!/bin/sh\nexec python3 "$@"\n' > .venv/bin/python && chmod +x .venv/bin/python
fi
PY=.venv/bin/python
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee "$OUT/device.txt"
[ -f data/synth/annotations/instances_train.json ] || \
  $PY -m data_prep.synth --out_dir data/synth --splits train --seed 1 > "$OUT/synth.log" 2>&1 &
$PY scripts/bench/bench_train.py --config=$CONFIG --no_input --steps 10 $EXTRA 2>&1 | grep --line-buffered -v Warn | tee "$OUT/bench_step.txt"
wait
echo "data + step bench: $(( $(date +%s) - t0 )) s"
$PY scripts/bench/bench_train.py --config=$CONFIG --no_step --input_batches 30 --workdir $WORKDIR $DATA $EXTRA 2>&1 \
  | grep --line-buffered -v -E "Warn|examples|Shuffling" | tee "$OUT/bench_input.txt"
BUDGET=$(( DEADLINE - ($(date +%s) - t0) - COMPILE_S - EXPORT_S ))
STEPS=$($PY - "$OUT" "$BUDGET" $EXTRA <<'PY'
import re, sys
from mottr import config_overrides, train  # importable: run from the repository root (or pip install -e .)
out, budget, extra = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
config = train.load_config("configs/gpu_finetune.py", config_overrides.parse_overrides(extra)[1])
rate = lambda f: float(re.search(r"summary: input_fps=(\S+) step_fps=(\S+)", open(f).read()).groups()[0 if "input" in f else 1])
fps = min(rate(f"{out}/bench_input.txt"), rate(f"{out}/bench_step.txt"))
print(max(20, min(20000, int(budget * fps / (config.batch_size * config.curriculum[0][1])))))
PY
)
echo "training steps: $STEPS (budget ${BUDGET} s)" | tee -a "$OUT/device.txt"
timeout $(( DEADLINE - ($(date +%s) - t0) - EXPORT_S )) scripts/train.sh --config=$CONFIG --workdir=$WORKDIR $DATA "--config.curriculum=(($STEPS, 5),)" $EXTRA \
  2>&1 | grep -v -E "Warn|examples|Shuffling" > "$OUT/train.log"
grep -E "compil|steps/s" "$OUT/train.log" | tail -4
$PY -m mottr.export --workdir $WORKDIR --out "$OUT/model" --config.model.snap_tracks=True 2>&1 | tail -2
echo "total: $(( $(date +%s) - t0 )) s"
