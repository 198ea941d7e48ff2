"""Stage 6 of the CPU recipe (shipped until stage 7, configs/cpu_r320.py): stage 4 continued with the
real box convention and overlay robustness.

Run:  python -m mottr.train --config=configs/cpu_padded.py --workdir=workdirs/cpu_padded \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 3000 steps of four 5-frame clips, about 0.9 s per model step on 2 quiet cores (scripts/bench/bench_train.py),
      so about 45-75 min depending on what shares the cores (the shipped run took 95 min on cores shared with
      tests); checkpoints every 250 steps. Export: python -m mottr.export --workdir workdirs/cpu_padded --out DIR \
        --config.model.snap_tracks=True --config.tracker.nut_weight=1.0 --overwrite  (docs/stage6.md)
Starts from stage 4 (configs/cpu_clips_long.py in workdirs/cpu_clips_long); the 2026-11-30 run started from its
export, then shipped (--config.init_from=mottr/assets/shipped before this stage replaced it). What changes:
- synthetic boxes grow by 4 px (bolts) / 5 px (nuts) per side, the margin the real annotators leave
  (docs/boxes.md), so synthetic and real boxes stop pulling the box regression apart;
- half the clips get burned-in detector overlays (1-px boxes with label tags, colour independent of the class),
  as the frames copied from another tracker's output video carry (the dense real clip; docs/boxes.md);
- real frames at weight 0.4.
"""
from configs import cpu_real


def get_config():
  """Stage 5's schedule and mix (configs/cpu_real.py), with the padded synthetic boxes and the overlays."""
  c = cpu_real.get_config()
  c.seed = 3
  c.data.synth_box_pad_px = (4, 5)
  c.data.overlay_prob = 0.5
  c.keep_checkpoints = 12
  return c
