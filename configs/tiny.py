"""A tiny MOTR for tests and a first try: needs no prepared data (generates a 90-frame root).

Run:  python -m mottr.train --config=configs/tiny.py --workdir=/tmp/mottr_tiny
Time: about a minute on 2 CPU cores.
"""
from configs import default


def get_config():
  c = default.get_config()
  c.model.update(image_size=64, d_model=32, num_heads=2, ffn_dim=64, enc_layers=1, dec_layers=1,
                 num_queries=6, num_slots=4, backbone_widths=(8, 16, 16, 32), backbone_blocks=(1, 1, 1))
  c.loss.matcher = "optax"  # the step enters the compilation cache (a test run reuses it)
  c.data.synth_frames = 90
  c.data.max_objects = 6
  c.batch_size = 2
  c.curriculum = ((4, 1), (4, 2))
  c.optim.warmup_steps = 2
  c.log_every = 2
  c.checkpoint_every = 4
  c.eval_every = 0
  c.eval_frames = 30
  return c
