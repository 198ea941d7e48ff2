"""Fine-tunes the shipped model on one GPU: batches of 48 five-frame clips, a real-heavier mix.

Run:  scripts/train.sh --config=configs/gpu_finetune.py --workdir=workdirs/gpu_finetune \
        --config.data.real_root=../shared/stroma [--config.curriculum='((N, 5),)']
      then  python -m mottr.export --workdir workdirs/gpu_finetune --out DIR --config.model.snap_tracks=True
Time: one NVIDIA H200 (16 host cores, 12 grain workers): 62 s compilation, then about 2400 frames/s
      (10 steps/s); 3000 steps in 5 min (docs/h200_session.md). scripts/h200_finetune.sh sets the step
      count from scripts/bench/bench_train.py's rates to fit one device call.
Starts from the exported shipped model (stage 4 of the CPU recipe); real frames at weight 0.4
instead of 0.25 (the real hall is where boxes and classes fail).
"""
from configs import cpu_clips_long


def get_config():
  c = cpu_clips_long.get_config()
  c.init_from = "mottr/assets/shipped"
  c.batch_size = 48
  c.loss.matcher = "scipy"  # host solver: a jitted one serialises the accelerator (mottr/matching.py)
  c.data.real_weight = 0.4
  c.data.workers = 12
  c.curriculum = ((1000, 5),)
  c.optim.update(lr=2e-4, warmup_steps=50)
  c.log_every = 25
  c.checkpoint_every = 100
  c.keep_checkpoints = 2
  c.eval_every = 0
  return c
