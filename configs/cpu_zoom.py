"""Stage 13 of the CPU recipe: stage 11 (shipped, step 1000) continued with scale augmentation (zoom) on half the clips.

Run:  python -m mottr.train --config=configs/cpu_zoom.py --workdir=workdirs/cpu_zoom \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1200 steps of four 5-frame clips at 320 px on 2 CPU cores; checkpoints every 250 steps.
Starts from step 1000 of stage 11 (workdirs/cpu_refine_long) with stage 11's schedule (lr 5e-5); what
changes is `data.zoom_prob=0.5`: half the clips (synthetic and real) are rescaled by 0.8-1.25 about a
random point (`mottr.input.zoom`), boxes clipped as the annotators clip theirs.
Why: the 677 real train frames are where the real boxes are learnt, and a YOLOv8n that reaches real val
mAP50-95 0.77 on them alone trains with scale and mosaic augmentation; mottr's real val mAP50-95 is 0.654.
"""
from configs import cpu_refine_long


def get_config():
  c = cpu_refine_long.get_config()
  c.seed = 10
  c.init_from = "workdirs/cpu_refine_long"
  c.init_step = 1000
  c.data.zoom_prob = 0.5
  c.data.zoom_range = (0.8, 1.25)
  return c
