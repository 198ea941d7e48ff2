"""Stage W3 (experiment): stage W2 (configs/cpu_wide_clips.py, step 3000) continued on 5-frame clips at half its
learning rate, as the shipped chain's stage 11 continued stage 10.

Run:  python -m mottr.train --config=configs/cpu_wide_long.py --workdir=workdirs/cpu_wide_long \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 2000 steps of four 5-frame clips at 320 px on 2 CPU cores at about 0.45 steps/s: about 75 min;
      checkpoints every 250 steps. Results: docs/stage16.md.
Why: over W2 the dense clip's tracking was still climbing (HOTA 0.639 at step 1000, 0.692 at 1500) while the
per-frame detector had already passed the shipped model's on the dense frames (mAP50 0.857 vs 0.815).
"""
from configs import cpu_wide_clips


def get_config():
  c = cpu_wide_clips.get_config()
  c.seed = 18
  c.init_from = "workdirs/cpu_wide_clips"
  c.curriculum = ((2000, 5),)
  c.optim.update(lr=1e-4, warmup_steps=50)
  return c
