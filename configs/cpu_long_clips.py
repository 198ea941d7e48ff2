"""Stage 18 (experiment): the shipped model (stage 11) trained on 10-frame clips, two per batch, with a
moving average of the weights.

Run:  python -m mottr.train --config=configs/cpu_long_clips.py --workdir=workdirs/cpu_long_clips \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1200 steps of two 10-frame clips at 320 px (the same 20 frames a step as four 5-frame clips): about
66 min on 2 CPU cores shared with evaluations (0.23-0.54 steps/s); checkpoints every 250 steps, each holding
the average (decay 0.998).
Why: every stage so far trained on clips of at most 5 frames, and the dense clip's failures are
long-horizon ones: a track box that drifts until it spans two objects, false tracks that persist
(issue 12: "the model learning it from longer clips").
Result (docs/stage18.md): not shipped. Step 1200: real val mAP50-95 0.654 (as shipped), dense -1 bolt and
HOTA 0.760 (shipped 0.774), synthetic val -6 bolts (shipped -3).
"""
from configs import cpu_refine_long


def get_config():
  c = cpu_refine_long.get_config()
  c.seed = 21
  c.init_from = "mottr/assets/shipped"
  c.batch_size = 2
  c.curriculum = ((1200, 10),)
  c.optim.update(lr=5e-5, warmup_steps=50, ema_decay=0.998)
  return c
