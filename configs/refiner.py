"""The crop refiner of the shipped model (mottr/model/crop_refiner.py), trained alone.

Run:  python -m mottr.train_refiner --config=configs/refiner.py --workdir=workdirs/refiner
Time: 12000 steps of 128 crops (64 px): 41 min on 2 fast CPU cores (4.9 steps/s, 2026-12-03; docs/stage30.md).
Data: the 677 real train frames (60 % of the crops) and every 6th frame of the synthetic train split (the first
1000 such frames, boxes padded 4 / 5 px like the shipped model's training), half of them with burned-in tracker
overlays drawn in (as the shipped model's training); the real val frames validate. Class-aware: a quarter of
the boxes are stretched over a touching neighbour, a fifth are negatives; at inference the "class is here" score
rescores the detect queries (rescore 1.0).
Then: python -m mottr.export --workdir mottr/assets/shipped --refiner workdirs/refiner --out mottr/assets/shipped --overwrite
"""
from mottr import config as config_lib


def get_config():
  c = config_lib.get_config()
  c.seed = 29
  c.data.real_root = "../shared/stroma"
  c.data.synth_root = "data/synth"
  c.data.synth_box_pad_px = (4, 5)
  c.data.overlay_prob = 0.5
  c.refiner.class_aware = True
  c.refiner.rescore = 1.0
  c.refiner.steps = 12000
  return c
