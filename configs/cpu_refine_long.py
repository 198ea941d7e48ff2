"""Stage 11 of the CPU recipe (shipped, step 1000): stage 10 (configs/cpu_refine.py, box-refinement head) continued at half the learning rate.

Run:  python -m mottr.train --config=configs/cpu_refine_long.py --workdir=workdirs/cpu_refine_long \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1200 steps of four 5-frame clips at 320 px: 41 min on 2 CPU cores shared with evaluations
      (0.4-0.6 steps/s); checkpoints every 250 steps. Export (the shipped model is step 1000, chosen on the
      real and synthetic val sets, docs/stage10.md):
      python -m mottr.export --workdir workdirs/cpu_refine_long --step 1000 --out mottr/assets/shipped --overwrite \
        --config.model.snap_tracks=True --config.tracker.nut_weight=1.0 --config.tracker.stall_window=30
Starts from stage 10 (workdirs/cpu_refine), whose refinement head was still improving the per-frame
boxes on the real val frames over its last 1000 steps.
"""
from configs import cpu_refine


def get_config():
  c = cpu_refine.get_config()
  c.seed = 8
  c.init_from = "workdirs/cpu_refine"
  c.curriculum = ((1200, 5),)
  c.optim.update(lr=5e-5, warmup_steps=50)
  return c
