"""Stage 10 of the CPU recipe: stage 7 (shipped, configs/cpu_r320.py) with a box-refinement head.

Run:  python -m mottr.train --config=configs/cpu_refine.py --workdir=workdirs/cpu_refine \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 2000 steps of four 5-frame clips at 320 px on 2 CPU cores; checkpoints every 250 steps.
Starts from stage 7 (workdirs/cpu_r320); the new head (mottr.model.motr.BoxRefine: 7 x 7 samples of
the stride-8 backbone map over each final box) starts as the identity, so step 0 is stage 7.
Why: per-frame localisation is what misses (real val mAP50-95 0.60 at mAP50 0.94; with perfect boxes
it would be 0.93, docs/boxes.md), and every box so far came from stride-16 features only.
"""
from configs import cpu_r320


def get_config():
  c = cpu_r320.get_config()
  c.seed = 7
  c.init_from = "workdirs/cpu_r320"
  c.model.refine_points = 7
  return c
