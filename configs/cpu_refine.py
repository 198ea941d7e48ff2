"""Stage 10 of the CPU recipe: stage 7 (shipped, configs/cpu_r320.py) with a box-refinement head.

Run:  python -m mottr.train --config=configs/cpu_refine.py --workdir=workdirs/cpu_refine \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 2000 steps of four 5-frame clips at 320 px: 74 min on 2 CPU cores shared with evaluations
      (0.35-0.62 steps/s); checkpoints every 250 steps. Not shipped itself: stage 11 continues it.
Starts from stage 7 (workdirs/cpu_r320); the new head (mottr.model.motr.BoxRefine: 7 x 7 samples of
the stride-8 backbone map over each final box) starts as the identity, so step 0 is stage 7.
Why: per-frame localisation is what misses (real val mAP50-95 0.60 at mAP50 0.94; with perfect boxes
it would be 0.93, docs/boxes.md), and every box so far came from stride-16 features only.
Result (docs/stage10.md): real val mAP50-95 0.599 -> 0.642 at step 2000 (the head alone: +0.038 at step 1000).
"""
from configs import cpu_r320


def get_config():
  c = cpu_r320.get_config()
  c.seed = 7
  c.init_from = "workdirs/cpu_r320"
  c.model.refine_points = 7
  return c
