"""MOTR on 2 CPU cores, stage 2 of 3: clip training from the stage-1 detector.

Run:  python -m mottr.train --config=configs/cpu_detect.py --workdir=workdirs/cpu_detect \
        --config.data.real_root=../shared/stroma                      # stage 1, single frames
      python -m mottr.train --config=configs/cpu.py --workdir=workdirs/cpu \
        --config.data.real_root=../shared/stroma                      # stage 2, clips of 3-4 frames
Time: stage 2 is 2200 steps, about 40 min on 2 CPU cores (measured 1.2 steps/s with 3-frame clips, 0.85
      with 4-frame clips; the shipped recipe stopped it at step 1500); scripts/bench/bench_train.py gives
      the per-step cost of each clip length. Stage 3 (configs/cpu_clips.py) starts from it.
"""
from configs import default


def get_config():
  c = default.get_config()
  c.init_from = "workdirs/cpu_detect"
  c.model.dec_layers = 2
  c.batch_size = 4
  c.curriculum = ((800, 3), (1400, 4))
  c.loss.track_drop_prob = 0.2
  c.loss.matcher = "optax"  # as fast as scipy on CPU, and the step enters the compilation cache
  c.optim.update(lr=2e-4, warmup_steps=200)
  c.log_every = 25
  c.checkpoint_every = 500
  c.eval_every = 1100
  c.eval_frames = 300
  return c
