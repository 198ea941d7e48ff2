"""Stage W2 (experiment): the wide backbone of stage W1 (configs/cpu_wide_detect.py) trained on clips, as the
shipped chain's stages 2-4 and 10 did for the shipped backbone, compressed into one run.

Run:  python -m mottr.train --config=configs/cpu_wide_clips.py --workdir=workdirs/cpu_wide_clips \
        --config.data.real_root=../shared/stroma --config.data.synth_root=data/synth
Time: 3000 steps of four clips (3, then 5 frames) at 320 px on 2 CPU cores: 0.72-0.74 steps/s on 3-frame clips,
      about 0.45 on 5-frame ones (about 100 min in all); checkpoints every 250 steps. Results: docs/stage16.md.
"""
from configs import cpu_wide_detect


def get_config():
  c = cpu_wide_detect.get_config()
  c.seed = 17
  c.init_from = "workdirs/cpu_wide_detect"
  c.batch_size = 4
  c.curriculum = ((500, 3), (2500, 5))
  c.loss.track_drop_prob = 0.2
  c.optim.update(lr=2e-4, warmup_steps=100)
  c.checkpoint_every = 250
  c.keep_checkpoints = 12
  return c
