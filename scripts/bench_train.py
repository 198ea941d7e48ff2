"""Benchmarks the training step of a config: step time, frames/s, peak memory.

  python scripts/bench_train.py [--config=configs/cpu.py] [--steps 10]

For every clip length of the config's curriculum it compiles the jitted update once, runs
WARMUP_STEPS untimed steps, then times `--steps` steps on batches of the config's shape (random
frames, 3 objects per frame): the model cost alone. `scripts/bench_train.py --with_data` also times the grain pipeline on a generated root.
"""
import argparse
import importlib
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mottr import data, train  # noqa: E402
from mottr.model.motr import build_model  # noqa: E402


WARMUP_STEPS = 2


def _batch(config, clip_len: int, rng: np.random.Generator) -> dict:
  b, s, m = config.batch_size, config.model.image_size, config.data.max_objects
  mask = np.zeros((b, clip_len, m), bool)
  mask[:, :, :3] = True
  return {"image": rng.integers(0, 255, (b, clip_len, s, s, 3), dtype=np.uint8),
          "boxes": (rng.uniform(0.2, 0.8, (b, clip_len, m, 4)) * [1, 1, 0.15, 0.15]).astype(np.float32),
          "labels": rng.integers(0, 2, (b, clip_len, m)).astype(np.int32), "mask": mask,
          "gap": np.ones(b, np.float32)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/cpu.py")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--with_data", action="store_true", help="also time the input pipeline")
  args = parser.parse_args()
  config = importlib.import_module(args.config.removesuffix(".py").replace("/", ".")).get_config()
  model = build_model(config)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  step = train.make_train_step(config, model, mesh)
  state = train.create_state(config, model)
  rng = np.random.default_rng(0)
  print(f"{args.config}: batch {config.batch_size}, {config.model.image_size}px, {len(jax.devices())} "
        f"{jax.devices()[0].platform} device(s), {os.cpu_count()} cores")
  print("| clip length | compile s | step s | frames/s | steps/hour |")
  print("|---|---|---|---|---|")
  total_s = 0.0
  for steps, clip_len in config.curriculum:
    batch = _batch(config, clip_len, rng)
    t0 = time.perf_counter()
    state, metrics = step(state, batch, train.step_rng(config, 0))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    for i in range(WARMUP_STEPS):  # first executions pay one-time allocation costs
      state, metrics = step(state, batch, train.step_rng(config, i))
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for i in range(args.steps):
      state, metrics = step(state, batch, train.step_rng(config, i))
    jax.block_until_ready(metrics)
    dt = (time.perf_counter() - t0) / args.steps
    total_s += dt * steps
    frames = config.batch_size * clip_len / dt
    print(f"| {clip_len} | {compile_s:.1f} | {dt:.3f} | {frames:.1f} | {3600 / dt:.0f} |")
  print(f"whole curriculum ({data.total_steps(config)} steps): {total_s / 3600:.2f} h of model steps")
  if args.with_data:
    with tempfile.TemporaryDirectory() as workdir:
      config.data.synth_frames = 300
      loader = data.TrainData(config, workdir)
      t0 = time.perf_counter()
      for i in range(args.steps):
        loader.batch(i)
      print(f"input pipeline: {(time.perf_counter() - t0) / args.steps:.3f} s per batch (one thread)")
  print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
  main()
