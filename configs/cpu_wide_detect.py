"""Stage W1 (experiment): single-frame detection pre-training of a wider, deeper backbone, from scratch at 320 px.

Asks whether backbone capacity is what holds the boxes back (real val per-frame mAP50-95 0.654 shipped vs the
0.80 target): widths (32, 64, 128, 256) and blocks (1, 2, 2), 4.5 M parameters against 2.5 M, and 21 ms against
15 ms per frame for the encoder and one decode (2 cores). The A/B arm is the same run with the shipped backbone.

Run:  python -m mottr.train --config=configs/cpu_wide_detect.py --workdir=workdirs/cpu_wide_detect \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
      A/B arm: the same with --workdir=workdirs/cpu_base_detect --config.model.backbone_widths='(32,48,96,192)' \
        --config.model.backbone_blocks='(1,1,1)'
Time: 3000 steps of 8 frames, side by side on 2 CPU cores: about 70 min (wide, 0.65-0.75 steps/s) and 50 min
      (base, 0.97-1.04 steps/s); checkpoints every 500 steps. Results: docs/stage16.md.
Score:  python scripts/bench/bench_detection.py --root ../shared/stroma --split val \
          --frames_dir ../shared/stroma/frames/val --checkpoints workdirs/cpu_wide_detect,workdirs/cpu_base_detect
"""
from configs import cpu_detect


def get_config():
  c = cpu_detect.get_config()
  c.seed = 16
  c.model.image_size = 320
  c.model.refine_points = 7
  c.model.backbone_widths = (32, 64, 128, 256)
  c.model.backbone_blocks = (1, 2, 2)
  c.data.real_weight = 0.4
  c.data.synth_box_pad_px = (4, 5)
  c.data.overlay_prob = 0.5
  c.curriculum = ((3000, 1),)
  c.optim.update(warmup_steps=200, ema_decay=0.998)
  c.checkpoint_every = 500
  c.keep_checkpoints = 6
  c.eval_every = 0  # scored with bench_detection, not the periodic tracking eval
  return c
