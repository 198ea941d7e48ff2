"""Stage 14 of the CPU recipe: stage 12 (configs/cpu_cascade.py, two refinement passes) continued at half the learning rate.

Run:  python -m mottr.train --config=configs/cpu_cascade_long.py --workdir=workdirs/cpu_cascade_long \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1000 steps of four 5-frame clips at 320 px on 2 CPU cores; checkpoints every 250 steps.
Starts from stage 12's last checkpoint (step 1800), as stage 11 continued stage 10: stage 12 ended with
the best real val detection so far (mAP50-95 0.665) but lower tracking HOTA than the shipped stage 11.
"""
from configs import cpu_cascade


def get_config():
  c = cpu_cascade.get_config()
  c.seed = 11
  c.init_from = "workdirs/cpu_cascade"
  c.init_step = 1800
  c.curriculum = ((1000, 5),)
  c.optim.update(lr=5e-5, warmup_steps=50)
  return c
