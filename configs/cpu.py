"""MOTR on 2 CPU cores: the budget that produces the shipped model.

Run:  python -m mottr.train --config=configs/cpu.py --workdir=workdirs/cpu \
        --config.data.real_root=../shared/stroma
Time: 6000 steps in about 80 min on 2 CPU cores shared with other work (the shipped run, README);
      scripts/bench_train.py gives the per-step cost of each clip length.
"""
from configs import default


def get_config():
  c = default.get_config()
  c.model.dec_layers = 2
  c.batch_size = 4
  c.curriculum = ((3000, 1), (1500, 2), (1500, 3))
  c.optim.warmup_steps = 300
  c.log_every = 25
  c.checkpoint_every = 500
  c.eval_every = 1500
  c.eval_frames = 300
  return c
