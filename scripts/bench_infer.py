"""Benchmarks mottr.infer on a generated 640x640 30 FPS video: throughput and peak memory.

  python scripts/bench_infer.py [--checkpoint DIR] [--seconds 60] [--loops 10] [--quick]

Renders --seconds of synthetic video (data_prep.synth, seed 4242: neither the training nor the
demo seed) and prints two markdown tables:
- throughput, in this process: decode only (cv2 read loop); mottr.infer without drawing (decode
  + resize + model + tracking + counting); mottr.infer writing annotated.mp4 too. FPS leave out
  the first infer.WARMUP_FRAMES frames (they compile the model), and are compared with decode
  only. Targets: >= 30 FPS end to end and >= 0.5 of decode only.
- memory: peak RSS of `python -m mottr.infer` (all outputs, annotated.mp4 included), each run
  in a fresh process, on the video and on it looped --loops times (default 10 minutes): equal
  peaks show that memory stays flat with the video's length.
--quick is a smoke run: a 3 s video, looped twice. The model is the shipped one unless
--checkpoint (a training workdir or an exported model) is given.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import cv2  # noqa: E402
import jax  # noqa: E402

from data_prep import challenge, synth  # noqa: E402
from mottr import infer  # noqa: E402
from mottr import predictor as predictor_lib  # noqa: E402
from mottr.errors import UserError  # noqa: E402

SEED = 4242
TARGET_FPS = 30.0
TARGET_RATIO = 0.5


def decode_fps(path: str) -> float:
  """Frames per second of a bare cv2 read loop over the whole video."""
  cap = cv2.VideoCapture(path)
  start, n = time.perf_counter(), 0
  while cap.read()[0]:
    n += 1
  seconds = time.perf_counter() - start
  cap.release()
  return n / seconds


def loop_video(src: str, dst: str, loops: int) -> int:
  """Writes `src` `loops` times in a row into `dst` (mp4v); returns the frame count."""
  writer, n = None, 0
  for _ in range(loops):
    cap = cv2.VideoCapture(src)
    while True:
      ok, frame = cap.read()
      if not ok:
        break
      if writer is None:
        writer = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*"mp4v"), challenge.FPS,
                                 (frame.shape[1], frame.shape[0]))
      writer.write(frame)
      n += 1
    cap.release()
  writer.release()
  return n


def infer_process(video: str, checkpoint: str | None, out_dir: str) -> dict:
  """Runs the mottr.infer CLI in a fresh process; its peak RSS, wall time and steady FPS."""
  cmd = [sys.executable, "-m", "mottr.infer", "--video", video, "--output_dir", out_dir]
  if checkpoint:
    cmd += ["--checkpoint", checkpoint]
  log_path = out_dir + ".log"
  start = time.perf_counter()
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=log,
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
  num_frames = round(args.seconds * challenge.FPS)
  settings = infer.TrackerSettings()

  with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
    start = time.perf_counter()
    synth.generate_split(tmp, "test", num_frames, SEED, rle=False, progress=False)
    video = challenge.video_path(tmp, "test")
    print(f"rendered {num_frames} frames ({args.seconds:g} s, 640x640, 30 FPS, mp4v) in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    decode = decode_fps(video)
    plain = infer.run(infer.open_source(video), lambda: predictor, os.path.join(tmp, "plain"),
                      settings, write_video=False, progress=False)
    drawn = infer.run(infer.open_source(video), lambda: predictor, os.path.join(tmp, "drawn"),
                      settings, write_video=True, progress=False)

    print(f"\nmodel: {checkpoint or 'shipped model'} ({predictor.input_size} px input); "
          f"{os.cpu_count()} cores, {len(jax.devices())} {jax.devices()[0].platform} device(s)")
    print(f"FPS leave out the first {infer.WARMUP_FRAMES} frames of each run (warm-up: "
          f"{plain.warmup_seconds:.1f} s in the first run, compilation included).\n")
    print(f"| stage | FPS | vs decode only | >= {TARGET_FPS:g} FPS | >= {TARGET_RATIO:g} of decode |")
    print("|---|---:|---:|---|---|")
    print(f"| decode only (cv2 read loop) | {decode:.1f} | 1.00 | | |")
    for name, result in (("mottr.infer, no drawing (decode, resize, model, tracking, counting)",
                          plain), ("mottr.infer, writing annotated.mp4 too", drawn)):
      fps = result.steady_fps
      print(f"| {name} | {fps:.1f} | {fps / decode:.2f} | {_verdict(fps >= TARGET_FPS)} | "
            f"{_verdict(fps / decode >= TARGET_RATIO)} |")

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
      print(f"| {frames / challenge.FPS / 60:.2f} min | {frames} | {run['rss_mib']:.0f} | "
            f"{run['wall_s']:.0f} | {run['fps']:.1f} |", flush=True)
    print(f"\npeak RSS, long / short video: {peaks[1] / peaks[0]:.3f}")


if __name__ == "__main__":
  try:
    main()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
