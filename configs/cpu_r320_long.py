"""Stage 8 of the CPU recipe (measured, not shipped): stage 7 (320 px) continued at half the learning rate.

Run:  python -m mottr.train --config=configs/cpu_r320_long.py --workdir=workdirs/cpu_r320_long \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1200 steps of four 5-frame clips at 320 px: 37 min on 2 CPU cores shared with evaluations
      (0.4-0.67 steps/s).
Starts from stage 7 (configs/cpu_r320.py in workdirs/cpu_r320), whose losses and per-frame val
detection were still improving at its end. Result (docs/stage7.md): per-frame val detection improved
(mAP50-95 0.599 -> 0.615) but the dense clip lost a bolt and 0.014 HOTA, so stage 7 ships.
"""
from configs import cpu_r320


def get_config():
  c = cpu_r320.get_config()
  c.seed = 5
  c.init_from = "workdirs/cpu_r320"
  c.curriculum = ((1200, 5),)
  c.optim.update(lr=5e-5, warmup_steps=50)
  return c
