"""Benchmarks training on whatever JAX devices this machine has: input pipeline, model step, compilation.

  python scripts/bench/bench_train.py [--config=configs/cpu.py] [--steps 10] [--input_batches 20]
      [--no_input | --no_step] [--workdir DIR] [--config.a.b=v ...]

1. The input pipeline alone: `TrainData.batches` with the config's `data.workers`, on the config's
   data (`data.synth_root`, else 600 generated frames; `data.real_root` joins as in training), at
   the config's batch size and first clip length; the first batches (worker start-up) untimed. This
   is the host part: frames gathered from the in-memory frame cache (its size and fill time printed),
   flip, JPEG and overlays. Prepared data goes to a temporary workdir, or to --workdir (a training
   workdir reuses it).
2. With `data.augment`, the photometric augmentation alone (jitted; it is also part of every step).
3. The model step alone, for every clip length of the curriculum: compilation timed apart (tracing
   and lowering, then XLA compilation; `compile s` is both, without the first step's own run, which
   is printed as `first step s`; `compile CPU s`: the process's CPU time meanwhile, steadier than wall
   time where other work shares the cores), WARMUP_STEPS untimed, then `--steps` timed steps on batches of the
   config's shape (random frames, 3 objects per frame).
Ends with one line: `summary: input_fps=.. step_fps=.. compile_s_max=.. compile_s_min=..`
(step_fps: frames/s of the curriculum's longest clips).
"""
import argparse
import os
import resource
import sys
import tempfile
import time

import jax
import numpy as np

from data_prep import prepare
from mottr import compile_cache, config_overrides, data, train
from mottr.model.motr import build_model
from mottr.schema import UserError

WARMUP_STEPS = 2
WARMUP_BATCHES = 3


def _batch(config, clip_len: int, rng: np.random.Generator) -> dict:
  b, s, m = config.batch_size, config.model.image_size, config.data.max_objects
  mask = np.zeros((b, clip_len, m), bool)
  mask[:, :, :3] = True
  return {"image": rng.integers(0, 255, (b, clip_len, s, s, 3), dtype=np.uint8),
          "boxes": (rng.uniform(0.2, 0.8, (b, clip_len, m, 4)) * [1, 1, 0.15, 0.15]).astype(np.float32),
          "labels": rng.integers(0, 2, (b, clip_len, m)).astype(np.int32), "mask": mask,
          "gap": np.ones(b, np.float32)}


def bench_input(config, batches: int, workdir: str | None) -> float:
  """Frames/s of the input pipeline alone (host: frame cache, clips, flip, JPEG, overlays) at the
  config's first clip length."""
  with tempfile.TemporaryDirectory() as tmp:
    if not config.data.synth_root:
      config.data.synth_frames = 600
    t0 = time.perf_counter()
    prepare.prepare(config, workdir or tmp)
    loader = data.TrainData(config, workdir or tmp)
    cached = [source for source, *_ in loader.sources]
    print(f"frame cache: {sum(len(c) for c in cached)} frames, {sum(c.nbytes for c in cached) / 2**20:.0f} MiB "
          f"(data prepared and cache filled in {time.perf_counter() - t0:.1f} s)", flush=True)
    warmup = max(WARMUP_BATCHES, 2 * int(config.data.workers))  # every worker started and busy
    it = loader.batches(0, warmup + batches, int(config.data.workers))
    for _ in range(warmup):
      next(it)
    t0 = time.perf_counter()
    frames = sum(b["image"].shape[0] * b["image"].shape[1] for b in it)
    fps = frames / (time.perf_counter() - t0)
  print(f"input pipeline: {fps:.0f} frames/s (batch {config.batch_size}, clip length {config.curriculum[0][1]}, "
        f"{config.data.workers} workers, augment={config.data.augment}: host part)", flush=True)
  return fps


def bench_augment(config, steps: int) -> None:
  """The photometric augmentation alone (the jitted part, also inside every model step's time)."""
  clip_len = max(t for _, t in config.curriculum)
  images = _batch(config, clip_len, np.random.default_rng(0))["image"]
  fn = jax.jit(lambda images, key: train.augment_batch(config, {"image": images}, key)["image"])
  compiled = fn.lower(images, train.step_rng(config, 0)).compile()
  jax.block_until_ready(compiled(images, train.step_rng(config, 0)))
  t0 = time.perf_counter()
  for i in range(steps):
    out = compiled(images, train.step_rng(config, i))
  jax.block_until_ready(out)
  dt = (time.perf_counter() - t0) / steps
  print(f"photometric augmentation (in the step): {dt * 1e3:.1f} ms per batch of clip length {clip_len}, "
        f"{images.shape[0] * clip_len / dt:.0f} frames/s", flush=True)


def bench_steps(config, steps: int) -> tuple[float, list[float]]:
  """(frames/s of the longest clip length's step, compile seconds per clip length: tracing, lowering
  and XLA compilation, without the first step's own run)."""
  model = build_model(config)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  step = train.make_train_step(config, model, mesh)
  t0 = time.perf_counter()
  state = train.create_state(config, model)
  jax.block_until_ready(state)
  print(f"init: {time.perf_counter() - t0:.1f} s", flush=True)
  rng = np.random.default_rng(0)
  print("| clip length | trace+lower s | XLA compile s | compile s | compile CPU s | first step s | step s "
        "| step s min / median | frames/s | steps/hour |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  total_s, compiles, longest = 0.0, [], (0, 0.0)
  for n, clip_len in config.curriculum:
    batch = _batch(config, clip_len, rng)
    c0, t0 = time.process_time(), time.perf_counter()
    lowered = step.lower(state, batch, train.step_rng(config, 0))
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2, cpu_s = time.perf_counter(), time.process_time() - c0
    lower_s = t1 - t0
    compiles.append(t2 - t0)
    state, metrics = compiled(state, batch, train.step_rng(config, 0))
    jax.block_until_ready(metrics)
    first = time.perf_counter() - t2
    for i in range(WARMUP_STEPS):  # first executions pay one-time allocation costs
      state, metrics = compiled(state, batch, train.step_rng(config, i))
    jax.block_until_ready(metrics)
    times = []
    for i in range(steps):  # each step waited for: min and median resist other work on shared cores
      t0 = time.perf_counter()
      state, metrics = compiled(state, batch, train.step_rng(config, i))
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - t0)
    dt = float(np.mean(times))
    total_s += dt * n
    frames = config.batch_size * clip_len / dt
    longest = max(longest, (clip_len, frames))
    print(f"| {clip_len} | {lower_s:.1f} | {t2 - t1:.1f} | {compiles[-1]:.1f} | {cpu_s:.1f} | {first:.2f} | {dt:.3f} "
          f"| {min(times):.3f} / {np.median(times):.3f} | {frames:.1f} | {3600 / dt:.0f} |", flush=True)
  print(f"whole curriculum ({data.total_steps(config)} steps): {total_s / 3600:.2f} h of model steps")
  return longest[1], compiles


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/cpu.py")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--input_batches", type=int, default=20)
  parser.add_argument("--no_input", action="store_true", help="skip the input pipeline")
  parser.add_argument("--no_step", action="store_true", help="skip the model step")
  parser.add_argument("--workdir", help="prepare the input data here (default: a temporary folder)")
  rest, overrides = config_overrides.parse_overrides(sys.argv[1:])
  args = parser.parse_args(rest)
  try:
    config = train.load_config(args.config, overrides)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  compile_cache.enable()
  print(f"{args.config}: batch {config.batch_size}, {config.model.image_size}px, {len(jax.devices())} "
        f"{jax.devices()[0].platform} device(s), {os.cpu_count()} cores", flush=True)
  input_fps = float("nan") if args.no_input else bench_input(config.copy_and_resolve_references(),
                                                              args.input_batches, args.workdir)
  if not args.no_step and config.data.augment:
    bench_augment(config, args.steps)
  step_fps, compiles = (float("nan"), [float("nan")]) if args.no_step else bench_steps(config, args.steps)
  print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
  print(f"summary: input_fps={input_fps:.0f} step_fps={step_fps:.0f} compile_s_max={max(compiles):.1f} "
        f"compile_s_min={min(compiles):.1f}")


if __name__ == "__main__":
  main()
