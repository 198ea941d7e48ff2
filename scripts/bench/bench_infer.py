"""Benchmarks mottr.infer on a generated 640x640 30 FPS video: throughput and peak memory.

  python scripts/bench/bench_infer.py [--checkpoint DIR] [--seconds 60] [--loops 10] [--quick]

Renders --seconds of synthetic video (data_prep.synth, seed 4242: neither the training nor the
demo seed) and prints two markdown tables:
- throughput, in this process: decode only (cv2 read loop); mottr.infer without drawing (decode
  + resize + model + tracking + counting); mottr.infer writing annotated.mp4 too. FPS leave out
  the first runner.WARMUP_FRAMES frames (they compile the model), and are compared with decode
  only. Targets: >= 30 FPS end to end and >= 0.5 of decode only.
- memory: peak RSS of `python -m mottr.infer` (all outputs, annotated.mp4 included), each run
  in a fresh process, on the video and on it looped --loops times (default 10 minutes): equal
  peaks show that memory stays flat with the video's length.
- per-stage time of a frame (ms, mean over the frames after warm-up) of one more run writing
  annotated.mp4, timed inside the real loop: decode, colour + resize, backbone + encoder, first
  decoder pass (track + detect queries), second decoder pass + snapping (detect queries alone),
  host transfer, crop refiner (when the model has one), tracker, carry (QIM), counting, drawing +
  encoding; each model stage is run to completion before the next starts, so their sum is a little
  above the end-to-end time.
- start-up: seconds from a fresh `python -m mottr.infer` process's start to its first processed
  frame, with the persistent compilation cache cold (a new, empty cache folder) and warm.
--quick is a smoke run: a 3 s video, looped twice. The model is the shipped one unless
--checkpoint (a training workdir or an exported model) is given.
"""
import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import types

import cv2
import jax
import numpy as np

from data_prep import synth
from mottr import infer
from mottr import outputs
from mottr import predictor as predictor_lib
from mottr import runner
from mottr import schema
from mottr import sources
from mottr import tracker as tracker_lib
from mottr.model.motr import MOTR, empty_tracks
from mottr.schema import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SEED = 4242
TARGET_FPS = 30.0
TARGET_RATIO = 0.5
TARGET_START_S = 3.0  # process start to first processed frame, warm compilation cache
CLIP_FRAMES = 203     # a short clip's whole run ...
TARGET_CLIP_S = 6.0   # ... including start-up, at most this (issue 16)


def decode_fps(path: str) -> float:
  """Frames per second of a bare cv2 read loop over the whole video."""
  cap = cv2.VideoCapture(path)
  start, n = time.perf_counter(), 0
  while cap.read()[0]:
    n += 1
  seconds = time.perf_counter() - start
  cap.release()
  return n / seconds


def loop_video(src: str, dst: str, loops: int, max_frames: int | None = None) -> int:
  """Writes `src` `loops` times in a row into `dst` (mp4v), at most max_frames; returns the frame count."""
  writer, n = None, 0
  for _ in range(loops):
    cap = cv2.VideoCapture(src)
    while max_frames is None or n < max_frames:
      ok, frame = cap.read()
      if not ok:
        break
      if writer is None:
        writer = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*"mp4v"), schema.FPS,
                                 (frame.shape[1], frame.shape[0]))
      writer.write(frame)
      n += 1
    cap.release()
  writer.release()
  return n


def infer_process(video: str, checkpoint: str | None, out_dir: str, cache_home: str | None = None) -> dict:
  """Runs the mottr.infer CLI in a fresh process; its peak RSS, wall time and steady FPS."""
  cmd = [sys.executable, "-m", "mottr.infer", "--video", video, "--output_dir", out_dir]
  if checkpoint:
    cmd += ["--checkpoint", checkpoint]
  log_path = out_dir + ".log"
  start = time.perf_counter()
  with open(log_path, "w") as log:
    env = dict(os.environ, **({"XDG_CACHE_HOME": cache_home} if cache_home else {}))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child alone
  wall = time.perf_counter() - start
  with open(log_path) as f:
    log_text = f.read()
  if os.waitstatus_to_exitcode(status) != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{log_text[-2000:]}")
  with open(os.path.join(out_dir, "counts.json")) as f:
    frames = json.load(f)["frames"]
  fps = re.search(r"\(([\d.]+) FPS after", log_text)
  return {"frames": frames, "rss_mib": usage.ru_maxrss / 1024, "wall_s": wall,
          "fps": float(fps.group(1)) if fps else float("nan")}


def start_up(video: str, checkpoint: str | None, out_dir: str, cache_home: str) -> float:
  """Seconds from a fresh `python -m mottr.infer` process's start to its first processed frame
  (its progress line shows frame 1), with XDG_CACHE_HOME (the compilation cache) at cache_home."""
  cmd = [sys.executable, "-m", "mottr.infer", "--video", video, "--output_dir", out_dir, "--no_video"]
  if checkpoint:
    cmd += ["--checkpoint", checkpoint]
  env = dict(os.environ, XDG_CACHE_HOME=cache_home)
  start = time.perf_counter()
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  seen, first = b"", None
  while first is None and (chunk := proc.stderr.read1(4096)):
    seen += chunk
    if re.search(rb"frame [1-9]\d*/", seen):
      first = time.perf_counter() - start
  proc.stderr.read()
  if proc.wait() != 0 or first is None:
    raise RuntimeError(f"{' '.join(cmd)} failed or showed no progress:\n{seen[-2000:].decode(errors='replace')}")
  return first


class StageTimer:
  """Per-stage seconds of every frame of one `runner.track_source` run, timed from inside its
  loop: a predictor proxy runs the model in its stages, and the tracker, counting and drawing
  calls are wrapped."""

  def __init__(self, predictor):
    self.p = predictor
    self.times: dict[str, list[float]] = {}
    model, params = predictor.model, predictor.params
    self._encode = jax.jit(lambda x: model.apply(params, x[None], method=MOTR.encode))
    self._decode = jax.jit(lambda memory, tracks, gap: model.apply(params, memory, tracks, gap,
                                                                   method=MOTR.decode))
    def alone(memory, tracks, gap, out):
      det = model.apply(params, memory, empty_tracks(*tracks.embed.shape), gap, method=MOTR.decode)
      return predictor_lib.snap_tracks(out, det, predictor.num_slots), det
    self._alone = jax.jit(alone)
    self._host = jax.jit(predictor_lib.host_outputs)
    self.input_size, self.num_slots = predictor.input_size, predictor.num_slots

  def timed(self, stage: str, fn, *args):
    start = time.perf_counter()
    value = jax.block_until_ready(fn(*args))
    self.times.setdefault(stage, []).append(time.perf_counter() - start)
    return value

  def reset(self, frame_gap: float = 1.0) -> None:
    self.p.reset(frame_gap)

  def encode(self, frame_rgb):
    return self.timed("backbone + encoder", self._encode, jax.numpy.asarray(frame_rgb))

  def step(self, memory):
    p = self.p
    if not p.config.model.snap_tracks:
      raise UserError("the stage breakdown times the shipped decoding (snap_tracks on)")
    out = self.timed("decoder pass 1 (tracks + detect queries)", self._decode, memory, p._tracks, p._gap)
    out, det = self.timed("decoder pass 2 (detect queries) + snapping", self._alone, memory, p._tracks, p._gap, out)
    p._out = out
    host = self.timed("host transfer", lambda: jax.device_get(self._host(out, p._tracks, det)))
    probs, boxes, valid, *free = host
    return predictor_lib.frame_output(probs, boxes, valid, self.num_slots, *free)

  def refine(self, frame_bgr, out):
    if self.p.refiner is None:
      return out
    return self.timed("crop refiner (cut + CNN)", self.p.refine, frame_bgr, out)

  def carry(self, next_slots) -> None:
    self.timed("carry (QIM)", lambda: (self.p.carry(next_slots), self.p._tracks)[1])

  def wrap(self, stage: str, fn):
    def wrapped(*args, **kwargs):
      start = time.perf_counter()
      value = fn(*args, **kwargs)
      self.times.setdefault(stage, []).append(time.perf_counter() - start)
      return value
    return wrapped


def stage_breakdown(video: str, predictor, settings, out_dir: str) -> tuple[dict[str, float], float]:
  """Mean ms per frame of each stage after the warm-up frames, and the run's end-to-end ms per frame."""
  timer = StageTimer(predictor)
  source = sources.open_source(video)
  frames = source.frames
  def timed_frames():
    it = iter(frames)
    while True:
      start = time.perf_counter()
      try:
        item = next(it)
      except StopIteration:
        return
      timer.times.setdefault("decode (cv2 read)", []).append(time.perf_counter() - start)
      yield item
  source = dataclasses.replace(source, frames=timed_frames())
  real = (runner.tracker_lib.Tracker, runner.counting.count_tracks, outputs.AnnotatedVideo.write)

  class TimedTracker(real[0]):
    update = timer.wrap("tracker", real[0].update)
    pop_finished = timer.wrap("tracker", real[0].pop_finished)

  runner.tracker_lib.Tracker = TimedTracker
  runner.counting.count_tracks = timer.wrap("counting", real[1])
  outputs.AnnotatedVideo.write = timer.wrap("drawing + encoding", real[2])
  try:
    result = runner.record(source, lambda: runner.ModelTracking(source, timer, settings), out_dir,
                           progress=False)
  finally:
    runner.tracker_lib.Tracker, runner.counting.count_tracks, outputs.AnnotatedVideo.write = real
  n = len(result.frames)
  skip = runner.WARMUP_FRAMES
  means = {}
  for stage, values in timer.times.items():
    per_frame = np.add.reduceat(values, np.linspace(0, len(values), n + 1).astype(int)[:-1]) if len(values) != n \
        else np.asarray(values)
    means[stage] = 1000 * float(np.mean(per_frame[skip:]))
  means["colour + resize"] = resize_ms(video, predictor.input_size)
  return means, 1000 * (result.seconds - result.warmup_seconds) / (n - skip)


def resize_ms(video: str, size: int) -> float:
  """Mean ms of the loop's BGR -> RGB conversion and INTER_AREA resize of a frame of the video."""
  cap = cv2.VideoCapture(video)
  total, n = 0.0, 0
  while (frame := cap.read())[0]:
    start = time.perf_counter()
    cv2.resize(cv2.cvtColor(frame[1], cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
    total, n = total + time.perf_counter() - start, n + 1
  cap.release()
  return 1000 * total / n


def _verdict(ok: bool) -> str:
  return "met" if ok else "NOT met"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
  parser.add_argument("--seconds", type=float, default=60.0, help="length of the video")
  parser.add_argument("--loops", type=int, default=10, help="repeats of it in the long video")
  parser.add_argument("--quick", action="store_true", help="smoke run: 3 s video, 2 loops")
  args = parser.parse_args()
  if args.quick:
    args.seconds, args.loops = 3.0, 2
  checkpoint = os.path.abspath(args.checkpoint) if args.checkpoint else None
  predictor = predictor_lib.load_predictor(checkpoint)
  num_frames = round(args.seconds * schema.FPS)
  settings = tracker_lib.TrackerSettings.from_config(predictor.config)

  with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
    start = time.perf_counter()
    synth.generate_split(tmp, "test", num_frames, SEED, rle=False, progress=False)
    video = schema.video_path(tmp, "test")
    print(f"rendered {num_frames} frames ({args.seconds:g} s, 640x640, 30 FPS, mp4v) in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    decode = decode_fps(video)
    plain = infer.run(sources.open_source(video), lambda: predictor, os.path.join(tmp, "plain"),
                      settings, write_video=False, progress=False)
    drawn = infer.run(sources.open_source(video), lambda: predictor, os.path.join(tmp, "drawn"),
                      settings, write_video=True, progress=False)

    print(f"\nmodel: {checkpoint or 'shipped model'} ({predictor.input_size} px input); "
          f"{os.cpu_count()} cores, {len(jax.devices())} {jax.devices()[0].platform} device(s)")
    print(f"FPS leave out the first {runner.WARMUP_FRAMES} frames of each run (warm-up: "
          f"{plain.warmup_seconds:.1f} s in the first run, compilation included).\n")
    print(f"| stage | FPS | vs decode only | >= {TARGET_FPS:g} FPS | >= {TARGET_RATIO:g} of decode |")
    print("|---|---:|---:|---|---|")
    print(f"| decode only (cv2 read loop) | {decode:.1f} | 1.00 | | |")
    for name, result in (("mottr.infer, no drawing (decode, resize, model, tracking, counting)",
                          plain), ("mottr.infer, writing annotated.mp4 too", drawn)):
      fps = result.steady_fps
      print(f"| {name} | {fps:.1f} | {fps / decode:.2f} | {_verdict(fps >= TARGET_FPS)} | "
            f"{_verdict(fps / decode >= TARGET_RATIO)} |")

    stages, end_to_end = stage_breakdown(video, predictor, settings, os.path.join(tmp, "stages"))
    print(f"\n| stage (writing annotated.mp4) | ms per frame | share of the sum |")
    print("|---|---:|---:|")
    total = sum(stages.values())
    for stage, ms in stages.items():
      print(f"| {stage} | {ms:.2f} | {ms / total:.0%} |")
    print(f"| sum of the stages | {total:.2f} | |")
    print(f"| end to end, same run (stages run to completion one by one) | {end_to_end:.2f} | |")

    clip = os.path.join(tmp, "clip.mp4")
    clip_frames = loop_video(video, clip, 1, CLIP_FRAMES)
    cache = os.path.join(tmp, "cache")
    cold = start_up(clip, checkpoint, os.path.join(tmp, "cold"), cache)
    warm = start_up(clip, checkpoint, os.path.join(tmp, "warm"), cache)
    clip_run = infer_process(clip, checkpoint, os.path.join(tmp, "clip"), cache_home=cache)
    print(f"\n| fresh `python -m mottr.infer` | seconds | target |")
    print("|---|---:|---|")
    print(f"| start to first processed frame, compilation cache cold | {cold:.1f} | |")
    print(f"| start to first processed frame, cache warm | {warm:.1f} | <= {TARGET_START_S:g} s: "
          f"{_verdict(warm <= TARGET_START_S)} |")
    print(f"| whole run on a {clip_frames}-frame clip (annotated.mp4 too), cache warm | "
          f"{clip_run['wall_s']:.1f} | <= {TARGET_CLIP_S:g} s: {_verdict(clip_run['wall_s'] <= TARGET_CLIP_S)} |")

    long_video = os.path.join(tmp, "long.mp4")
    long_frames = loop_video(video, long_video, args.loops)
    runs = [(video, num_frames), (long_video, long_frames)]
    print("\n| video (python -m mottr.infer, fresh process) | frames | peak RSS MiB | wall s | "
          "FPS after warm-up |")
    print("|---|---:|---:|---:|---:|")
    peaks = []
    for i, (path, frames) in enumerate(runs):
      run = infer_process(path, checkpoint, os.path.join(tmp, f"process{i}"))
      if run["frames"] != frames:
        raise RuntimeError(f"{path}: mottr.infer processed {run['frames']} of {frames} frames")
      peaks.append(run["rss_mib"])
      print(f"| {frames / schema.FPS / 60:.2f} min | {frames} | {run['rss_mib']:.0f} | "
            f"{run['wall_s']:.0f} | {run['fps']:.1f} |", flush=True)
    print(f"\npeak RSS, long / short video: {peaks[1] / peaks[0]:.3f}")


if __name__ == "__main__":
  try:
    main()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
