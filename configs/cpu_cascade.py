"""Stage 12 of the CPU recipe: stage 11 (shipped, step 1000) with a second box-refinement pass on the stride-4 map.

Run:  python -m mottr.train --config=configs/cpu_cascade.py --workdir=workdirs/cpu_cascade \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1800 steps of four 5-frame clips at 320 px on 2 CPU cores; checkpoints every 250 steps.
Starts from step 1000 of stage 11 (workdirs/cpu_refine_long); the new head (`box_refine_1`, 7 x 7
samples of the stride-4 backbone map over each box the stride-8 pass refined) starts as the identity,
so step 0 is the shipped model.
Why: real val mAP50-95 is 0.654 at mAP50 0.944 (target 0.80): the boxes are found but loose, and the
stride-8 pass gained 0.055 of it (docs/stage10.md); a stride-4 cell is 8 px of the 640-px frame.
"""
from configs import cpu_refine_long


def get_config():
  c = cpu_refine_long.get_config()
  c.seed = 9
  c.init_from = "workdirs/cpu_refine_long"
  c.init_step = 1000
  c.model.refine_passes = 2
  c.curriculum = ((1800, 5),)
  c.optim.update(lr=1e-4, warmup_steps=100)
  return c
