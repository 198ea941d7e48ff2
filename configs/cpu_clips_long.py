"""Stage 4 of the CPU recipe: more 4- and 5-frame clip steps from stage 3, on a new data order.

Run:  python -m mottr.train --config=configs/cpu_clips_long.py --workdir=workdirs/cpu_clips_long \
        --config.data.real_root=../shared/stroma
Time: 3200 steps (1200 of 4-frame, 2000 of 5-frame clips): about 62 min of model steps alone on
      2 CPU cores (0.89 / 1.32 s per 4- / 5-frame step, scripts/bench/bench_train.py); the shipped run took
      87 min with tracker diagnostics sharing the cores.
Starts from stage 3 (configs/cpu_clips.py in workdirs/cpu_clips), whose loss was still falling at
its end; seed 1 gives a clip order and augmentation stage 3 did not see.
"""
from configs import cpu_clips


def get_config():
  c = cpu_clips.get_config()
  c.seed = 1
  c.init_from = "workdirs/cpu_clips"
  c.curriculum = ((1200, 4), (2000, 5))
  c.optim.update(lr=1e-4, warmup_steps=100)
  c.eval_every = 3200
  return c
