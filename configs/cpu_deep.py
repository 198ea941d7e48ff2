"""Stage 17 (experiment): the shipped model (stage 11) with one more basic block in each of the backbone's
two coarsest stages, trained on 5-frame clips.

Run:  python -m mottr.train --config=configs/cpu_deep.py --workdir=workdirs/cpu_deep \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 1500 steps of four 5-frame clips at 320 px on 2 CPU cores; checkpoints every 250 steps.
Results: docs/stage17.md.
The new blocks (`Extra_1_1`, `Extra_2_1`, mottr.model.backbone) start as the identity, so step 0 is the
shipped model. Why: a wider and deeper backbone trained from scratch detected better at equal steps
(docs/stage16.md: real val mAP50-95 +0.07), but its chain takes more than one session to train; this
adds capacity without starting over.
"""
from configs import cpu_refine_long


def get_config():
  c = cpu_refine_long.get_config()
  c.seed = 19
  c.init_from = "mottr/assets/shipped"
  c.model.backbone_blocks = (1, 2, 2)
  c.curriculum = ((1500, 5),)
  c.optim.update(lr=1e-4, warmup_steps=100)
  return c
