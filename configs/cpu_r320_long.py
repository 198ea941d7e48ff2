"""Stage 8 of the CPU recipe: stage 7 (320 px) continued at half the learning rate on a new data order.

Run:  python -m mottr.train --config=configs/cpu_r320_long.py --workdir=workdirs/cpu_r320_long \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1200 steps of four 5-frame clips at 320 px: 1.6-2.5 s per step on 2 CPU cores (0.4-0.65 steps/s in
      the stage-7 run, depending on what shared the cores), so 30-50 min; docs/stage7.md.
Starts from stage 7 (configs/cpu_r320.py in workdirs/cpu_r320), whose losses and per-frame val
detection were still improving at its end (docs/stage7.md).
"""
from configs import cpu_r320


def get_config():
  c = cpu_r320.get_config()
  c.seed = 5
  c.init_from = "workdirs/cpu_r320"
  c.curriculum = ((1200, 5),)
  c.optim.update(lr=5e-5, warmup_steps=50)
  return c
