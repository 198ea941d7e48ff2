"""Stage 15 of the CPU recipe: the best per-frame detector so far (stage 14, step 1000) trained on with an
exponential moving average of the weights.

Run:  python -m mottr.train --config=configs/cpu_ema.py --workdir=workdirs/cpu_ema \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 2500 steps of four 5-frame clips at 320 px: about 90 min on 2 CPU cores shared with evaluations;
      checkpoints every 250 steps, each holding the average, which export, evaluation and warm starts read.
Starts from workdirs/cpu_cascade_long step 1000 (stage 14, docs/stage12.md; its stride-4 pass, since
deleted, is dropped: it contributed nothing). Why: neighbouring checkpoints differ by up to 0.04 dense
HOTA and 7 synthetic val exits (docs/stage12.md), and more training was the one lever that tightened
the boxes; an average over about 500 steps (decay 0.998) takes the step noise out of both.
Result (docs/stage15.md): not shipped. The average beats the raw weights at step 1000 (real val mAP50-95
0.670 vs 0.649, synthetic val 0.661 vs 0.634 HOTA). Steps 1000-2500 hold real val 0.670-0.677, and step 2250 gives
dense HOTA 0.782 at birth 0.5. It ties the shipped model on the validation sets and is worse on the synthetic test.
"""
from configs import cpu_refine_long


def get_config():
  c = cpu_refine_long.get_config()
  c.seed = 15
  c.init_from = "workdirs/cpu_cascade_long"
  c.init_step = 1000
  c.curriculum = ((2500, 5),)
  c.optim.update(lr=1e-4, warmup_steps=50, ema_decay=0.998)
  return c
