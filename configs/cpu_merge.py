"""Stage 17 (experiment): the shipped weights fine-tuned with widened track references (`loss.merge_ref_prob`).

The dense clip's one missed exit is the upper of two bolts falling in one column: the lower one's track box
spanned both for 17 frames and the detect queries beside it left the upper one alone (docs/stage16.md). Here half
of the carried track references that have a touching neighbour are widened over both objects
(`mottr.criterion.merge_refs`). Everything else is the recipe of the run from the shipped weights in
docs/stage15.md (workdirs/cpu_ema_s11), so that run is the control.

Run:  python -m mottr.train --config=configs/cpu_merge.py --workdir=workdirs/cpu_merge \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1500 steps of four 5-frame clips at 320 px, about 0.6 steps/s on 2 quiet cores; checkpoints every 250 steps.
"""
from configs import cpu_ema


def get_config():
  c = cpu_ema.get_config()
  c.seed = 16
  c.init_from = "workdirs/cpu_refine_long"
  c.init_step = 1000
  c.curriculum = ((1500, 5),)
  c.optim.lr = 5e-5
  c.loss.merge_ref_prob = 0.5
  return c
