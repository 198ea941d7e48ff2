"""Robustness of tracking and counting to lighting, noise, a mirrored hall and lower frame rates.

  python scripts/bench/bench_robustness.py --root DIR --split S [--checkpoint DIR]
      [--methods classical,sort,mottr] [--variants dark,dim,bright,noise_jpeg,mirror,stride2,stride3]
      [--work_dir DIR] [--quick | --max_frames N] [--frames_dir DIR]

Builds the transformed copies of the split (`transforms.py` beside this script: dark x0.45, dim
x0.7, bright x1.6, noise_jpeg = noise sigma 12 + JPEG 20, mirror = frames and boxes flipped
left-right, a hall laid out the other way round, stride2 / stride3 = a 15 / 10 FPS video), cached
in --work_dir, then:
1. checks that the ground truth of every copy counts exactly the clean split's true counts by the
   one rule of `mottr.counting` at the copy's frame rate (a table; stops if any differs);
2. runs every method on the clean video and on each copy, and prints one markdown table:
   method | variant | FPS | true bolt/nut | predicted bolt/nut | count error | HOTA | delta HOTA
   vs clean | targets. Targets: exact counts on every copy; HOTA within 5 points of clean (10 for
   stride3). Counts use the video's own frame rate; HOTA (TrackEval, both classes) is computed on
   every frame of the copy.
--quick is a smoke run on the first 301 frames (301 = 6k + 1: every copy ends on the same last
frame). The model is the shipped one unless --checkpoint (a training workdir or an exported
model) is given. Copies are re-encoded (mp4v), the clean video is not.

Methods: `METHODS` maps a name to a factory (parsed args -> runner); a runner tracks a
`mottr.sources.FrameSource` and returns its `mottr.tracker.Track`s (xywh pixel boxes, 0-based
frames of the source's timeline). The baselines run with their CLIs' default settings: the
classical pipeline (`mottr.baselines.classical`) and SORT over our detector without track queries
(`mottr.baselines.sort`, same checkpoint as mottr). Add a method by adding an entry.
"""
import argparse
import dataclasses
import itertools
import os
import sys
import time
from typing import Callable, Iterator

from mottr import sources
from mottr import runner
from mottr import tracker as tracker_lib
from mottr import schema
from mottr import counting
from mottr import evaluate

from mottr import outputs
from mottr.baselines import classical, sort
from mottr.schema import UserError
import transforms  # scripts/bench/transforms.py, beside this script
from mottr.schema import Track

QUICK_FRAMES = 301
HOTA_TARGET = {"stride3": 10.0}  # points below clean allowed; others HOTA_TARGET_DEFAULT
HOTA_TARGET_DEFAULT = 5.0
CLEAN = "clean"

Runner = Callable[[sources.FrameSource], list[Track]]


def _mottr(args: argparse.Namespace) -> Runner:
  from mottr import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  predictor = predictor_lib.load_predictor(args.checkpoint)
  settings = tracker_lib.TrackerSettings.from_config(predictor.config)  # the model's, as mottr.infer
  return lambda source: runner.track_source(source, predictor, settings, progress=False).tracks


def _classical(args: argparse.Namespace) -> Runner:
  del args  # the classical pipeline has no model
  settings, tracking = classical.ClassicalSettings(), sort.SortSettings()
  return lambda source: classical.track_source(source, settings, tracking, progress=False).tracks


def _sort(args: argparse.Namespace) -> Runner:
  from mottr import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  predictor = predictor_lib.load_predictor(args.checkpoint)
  tracking = sort.SortSettings()
  return lambda source: sort.track_detections(
      source, sort.ModelDetector(predictor, (source.width, source.height)), tracking,
      progress=False).tracks

METHODS: dict[str, Callable[[argparse.Namespace], Runner]] = {
    "classical": _classical, "sort": _sort, "mottr": _mottr}


@dataclasses.dataclass
class Run:
  """One method on one variant."""
  variant: str
  fps: float
  counts: dict  # evaluate.count_metrics
  hota: float  # points, both classes
  seconds: float


def _recorded(source: sources.FrameSource, seen: list[int]) -> sources.FrameSource:
  """The source, noting the index of every frame handed out in `seen`."""
  def frames() -> Iterator:
    for index, bgr in source.frames:
      seen.append(index)
      yield index, bgr
  return dataclasses.replace(source, frames=frames())


def score(runner: Runner, video: str, gt: dict, name: str) -> Run:
  """Runs a method over the first len(gt images) frames of a video; counts and HOTA vs gt."""
  source = sources.open_source(video)
  n = len(gt["images"])
  source = dataclasses.replace(source, frames=itertools.islice(source.frames, n), total=n)
  seen: list[int] = []
  start = time.perf_counter()
  tracks = runner(_recorded(source, seen))
  seconds = time.perf_counter() - start
  if len(seen) != n:
    raise UserError(f"{video}: {len(seen)} frames decoded, the annotations list {n}")
  pred = schema.tracks_to_coco(tracks, range(n), source.width, source.height)
  final = n - 1
  true = counting.count_coco(gt, fps=source.fps)
  predicted = counting.count_tracks(tracks, height=source.height, final_frame=final,
                                    fps=source.fps)
  hota = evaluate.tracking_metrics(gt, pred, [im["id"] for im in gt["images"]])["all"]["HOTA"]
  return Run(name, source.fps, evaluate.count_metrics(true, predicted), 100 * hota, seconds)


def score_frames(runner: Runner, frames_dir: str, gt: dict, name: str) -> Run:
  """Runs a method over a folder of sparse frames; counts and HOTA vs gt on those frames."""
  source = sources.open_source(frames_dir)
  seen: list[int] = []
  start = time.perf_counter()
  tracks = runner(_recorded(source, seen))
  seconds = time.perf_counter() - start
  pred = schema.tracks_to_coco(tracks, seen, source.width, source.height)
  image_ids = sorted({f + 1 for f in seen} & {im["id"] for im in gt["images"]})
  metrics, _ = evaluate.evaluate(gt, pred, image_ids, source.frame_step)
  return Run(name, source.fps / source.frame_step, metrics["counts"],
             100 * metrics["tracking"]["all"]["HOTA"], seconds)


def _pair(counts: dict) -> str:
  return "/".join(str(counts[n]) for n in schema.CATEGORY_NAMES.values())


def truth_table(truth: dict[str, tuple[float, int, dict]]) -> tuple[str, bool]:
  """Markdown table of the true counts of every variant; whether all equal the clean split's."""
  clean = truth[CLEAN][2]
  lines = ["| variant | FPS | frames | true bolt/nut | equals clean |", "|---|---:|---:|---:|---|"]
  ok = True
  for name, (fps, frames, counts) in truth.items():
    same = counts == clean
    ok &= same
    lines.append(f"| {name} | {fps:g} | {frames} | {_pair(counts)} | {'yes' if same else 'NO'} |")
  return "\n".join(lines), ok


def results_table(results: dict[str, list[Run]]) -> str:
  names = list(schema.CATEGORY_NAMES.values())
  lines = ["| method | variant | FPS | true bolt/nut | predicted bolt/nut | count error | HOTA "
           "| delta HOTA | targets |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
  for method, runs in results.items():
    clean = next(r.hota for r in runs if r.variant == CLEAN)
    for r in runs:
      c = r.counts
      error = "/".join(f"{c['error'][n]:+d}" for n in names)
      delta = r.hota - clean
      exact = c["abs_error"] == 0
      hota_ok = r.variant == CLEAN or delta >= -HOTA_TARGET.get(r.variant, HOTA_TARGET_DEFAULT)
      verdict = "met" if exact and hota_ok else "NOT met"
      lines.append(f"| {method} | {r.variant} | {r.fps:g} | {_pair(c['true'])} | "
                   f"{_pair(c['predicted'])} | {error} | {r.hota:.1f} | "
                   f"{'' if r.variant == CLEAN else f'{delta:+.1f}'} | {verdict} |")
  return "\n".join(lines)


def _log(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="challenge-layout root with the split")
  parser.add_argument("--split", default="val")
  parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
  parser.add_argument("--methods", default=",".join(METHODS),
                      help=f"comma-separated, of {list(METHODS)}; empty: the ground truth check only")
  parser.add_argument("--variants", default=",".join(transforms.VARIANTS))
  parser.add_argument("--work_dir", default=None,
                      help="where copies are cached; default outputs/robustness/<split>")
  parser.add_argument("--quick", action="store_true", help=f"first {QUICK_FRAMES} frames only")
  parser.add_argument("--max_frames", type=int, default=None, help="first N frames only")
  parser.add_argument("--seed", type=int, default=0, help="noise of the noise_jpeg copy")
  parser.add_argument("--frames_dir", default=None,
                      help="a folder of frames (NNNN.jpg by image_id) of the split, e.g. "
                           "../shared/stroma/frames/val or ../shared/stroma/dense: its per-frame "
                           "variants instead of the video's")
  args = parser.parse_args()
  try:
    run(args)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def run(args: argparse.Namespace) -> None:
  methods = [m for m in args.methods.split(",") if m]
  variants = [v for v in args.variants.split(",") if v]
  for m in methods:
    if m not in METHODS:
      raise UserError(f"--methods: unknown method {m!r}; choose from {', '.join(METHODS)}")
  for v in variants:
    transforms.variant(v)
  max_frames = QUICK_FRAMES if args.quick else args.max_frames
  if max_frames is not None and max_frames < 1:
    raise UserError(f"--max_frames {max_frames}: must be positive")
  if args.checkpoint:
    args.checkpoint = os.path.abspath(args.checkpoint)
  if args.frames_dir:
    run_frames(args, methods, variants)
    return
  gt = schema.validate_root(args.root, args.split)
  video = schema.video_path(args.root, args.split)
  fps = transforms.container_fps(video)
  clean_gt = transforms.transform_annotations(gt, transforms.Variant(), fps, max_frames)
  work_dir = args.work_dir or os.path.join("outputs", "robustness", args.split)
  work_dir = os.path.join(work_dir, f"first{max_frames}" if max_frames else "all")

  copies = {CLEAN: (video, clean_gt)}
  for v in variants:
    start = time.perf_counter()
    out = os.path.join(work_dir, v)
    coco = transforms.build_copy(args.root, args.split, v, out, seed=args.seed,
                                 max_frames=max_frames)
    copies[v] = (schema.video_path(out, args.split), coco)
    _log(f"copy {v}: {len(coco['images'])} frames in {out} ({time.perf_counter() - start:.0f} s)")

  truth = {name: (coco["info"]["fps"], len(coco["images"]), counting.count_coco(coco).counts)
           for name, (_, coco) in copies.items()}
  table, ok = truth_table(truth)
  print(f"## Ground truth of the copies ({args.root} {args.split}, "
        f"{len(clean_gt['images'])} frames)\n\n{table}\n", flush=True)
  if not ok:
    raise UserError("the ground truth of a copy does not count the clean split's true counts; "
                    "the counting rule or the transform is wrong")

  if not methods:
    return
  results = run_methods(args, methods, {name: (lambda runner, path=path, coco=coco, name=name:
                                                score(runner, path, coco, name))
                                         for name, (path, coco) in copies.items()})
  print(f"## Robustness ({_model(args, methods)})\n\n{results_table(results)}")


def _model(args: argparse.Namespace, methods: list[str]) -> str:
  uses_model = any(m != "classical" for m in methods)
  return f"{', '.join(methods)}" + (f"; model {args.checkpoint or 'shipped'}" if uses_model else "")


def run_methods(args: argparse.Namespace, methods: list[str],
                jobs: dict[str, Callable[[Runner], Run]]) -> dict[str, list[Run]]:
  """Every method on every copy (jobs: copy name -> scorer of a runner)."""
  results: dict[str, list[Run]] = {}
  for m in methods:
    runner = METHODS[m](args)
    results[m] = []
    for name, job in jobs.items():
      r = job(runner)
      results[m].append(r)
      _log(f"{m} {name}: predicted {_pair(r.counts['predicted'])} (true "
           f"{_pair(r.counts['true'])}), HOTA {r.hota:.1f} in {r.seconds:.0f} s")
  return results


def run_frames(args: argparse.Namespace, methods: list[str], variants: list[str]) -> None:
  """The per-frame variants of a folder of frames (sparse or every one), scored on their ground
  truth (mirrored with the mirror's frames)."""
  files = sources.frame_files(args.frames_dir)
  gt = schema.load_annotations(args.root, args.split)
  skipped = [v for v in variants if transforms.variant(v).stride != 1]
  work_dir = args.work_dir or os.path.join("outputs", "robustness", f"{args.split}_frames")
  copies = {CLEAN: (args.frames_dir, gt)}
  for v in variants:
    if v not in skipped:
      copies[v] = (transforms.build_frames_copy(files, v, os.path.join(work_dir, v), seed=args.seed),
                   transforms.mirrored(gt) if transforms.variant(v).flip else gt)
  results = run_methods(args, methods, {name: (lambda runner, d=d, g=g, name=name:
                                               score_frames(runner, d, g, name))
                                        for name, (d, g) in copies.items()})
  note = f" ({', '.join(skipped)} do not apply to sparse frames)" if skipped else ""
  print(f"## Robustness on {args.frames_dir}, {len(files)} frames ({_model(args, methods)})"
        f"{note}\n\n{results_table(results)}")


if __name__ == "__main__":
  main()
