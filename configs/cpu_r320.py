"""Stage 7 of the CPU recipe (shipped until stage 11, configs/cpu_refine_long.py): stage 6 continued at 320 px input (stride-16 grid 20x20, was 16x16).

Run:  python -m mottr.train --config=configs/cpu_r320.py --workdir=workdirs/cpu_r320 \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 2000 steps of four 5-frame clips at 320 px: 71 min on 2 CPU cores shared with evaluations
      (0.37-0.65 steps/s); first builds r320 records of the synthetic and real train frames in the
      workdir (under a minute). Export: python -m mottr.export --workdir workdirs/cpu_r320 --out mottr/assets/shipped --overwrite \
        --config.model.snap_tracks=True --config.tracker.nut_weight=1.0 --config.tracker.stall_window=30
Starts from stage 6 (configs/cpu_padded.py in workdirs/cpu_padded). Every parameter is independent of
the input size (convolutions, 2D sine positions, anchors relative to the image), so the stage-6 weights
load as they are. Why: localisation is what misses (real val mAP50-95 0.55 per frame, docs/stage6.md);
at 256 px a nut is 18 px wide, at 320 px 22.5 px, and a YOLOv8n at 320 px reaches 0.77 on the same frames.
"""
from configs import cpu_padded


def get_config():
  c = cpu_padded.get_config()
  c.seed = 4
  c.init_from = "workdirs/cpu_padded"
  c.model.image_size = 320
  c.curriculum = ((2000, 5),)
  return c
