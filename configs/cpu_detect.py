"""Stage 1 of the CPU recipe: single-frame detection pre-training (clip length 1).

Run:  python -m mottr.train --config=configs/cpu_detect.py --workdir=workdirs/cpu_detect \
        --config.data.real_root=../shared/stroma
Time: 3500 steps of 8 frames, 46 min on 2 CPU cores shared with other work (1.27 steps/s; the shipped run).
Stage 2 (configs/cpu.py) starts from its last checkpoint.
"""
from configs import default


def get_config():
  c = default.get_config()
  c.model.dec_layers = 2
  c.batch_size = 8
  c.loss.matcher = "optax"  # as fast as scipy on CPU, and the step enters the compilation cache
  c.curriculum = ((3500, 1),)
  c.optim.warmup_steps = 300
  c.log_every = 25
  c.checkpoint_every = 500
  c.eval_every = 1750
  c.eval_frames = 300
  return c
