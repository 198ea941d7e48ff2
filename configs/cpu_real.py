"""Stage 5 of the CPU recipe: the shipped model continued on a real-heavier mix (real frames at weight 0.4).

Run:  python -m mottr.train --config=configs/cpu_real.py --workdir=workdirs/cpu_real \
        --config.data.real_root=../shared/stroma [--config.init_from=DIR]
Time: 3000 steps of four 5-frame clips: 0.89 s per model step on 2 quiet cores (scripts/bench/bench_train.py),
      0.66-0.9 steps/s in the 2026-11-30 run, which shared the cores (about 75 min); checkpoints every 250 steps.
Starts from stage 4 (workdirs/cpu_clips_long, shipped until stage 6); the 2026-11-30 run started from the 200-step H200 fine-tune
(--config.init_from=workdirs/h200_s200, docs/h200_session.md). Same objective as stages 3-4; what changes is the mix: the real
hall is where boxes and classes fail (the dense real clip, README), and the GPU fine-tune of the same mix
(configs/gpu_finetune.py) lowered the matched-box losses steadily over 3000 steps.
"""
from configs import cpu_clips_long


def get_config():
  c = cpu_clips_long.get_config()
  c.seed = 2
  c.init_from = "workdirs/cpu_clips_long"  # stage 4 (shipped until stage 6 replaced it)
  c.data.real_weight = 0.4
  c.curriculum = ((3000, 5),)
  c.optim.update(lr=1e-4, warmup_steps=100)
  c.checkpoint_every = 250
  c.keep_checkpoints = 4
  c.eval_every = 0
  return c
