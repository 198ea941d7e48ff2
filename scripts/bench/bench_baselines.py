"""Classical, SORT and mottr on the same split, scored alike: one markdown table.

  python scripts/bench/bench_baselines.py --root DIR --split S [--checkpoint DIR] [--frames_dir DIR]
                                    [--methods classical,sort,mottr] [--max_frames N]

Runs each method end to end on `images/{S}/{S}.mp4` (or on --frames_dir, frames named NNNN.jpg
by image_id), in process: `mottr.baselines.classical`, `mottr.baselines.sort` (our detector
without track queries) and `mottr.infer` (the MOTR tracker), the last two sharing one loaded
--checkpoint (default: the shipped model). Each result is scored by `mottr.evaluate.evaluate`
against `annotations/instances_{S}.json`, and stdout gets one table: count error per class
(predicted - true, with predicted/true), HOTA, IDF1 and ID switches over both classes, and the
steady frames per second (after runner.WARMUP_FRAMES frames). The settings of the three CLIs
apply (--config.tracker.x=v for mottr, --score_threshold/--match_iou/--min_hits for SORT and the
classical tracker, --fg_threshold for classical, --miss_tolerance and --edge_tolerance for both
baselines).
"""
import dataclasses
import itertools
import os
import sys
from typing import Any, Callable

from absl import app
from absl import flags

from mottr import cli
from mottr import evaluate
from mottr import runner
from mottr import schema
from mottr import sources
from mottr.baselines import classical, sort
from mottr.schema import UserError, run_cli

METHODS = ("classical", "sort", "mottr")
FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLIs' flags this script reads, and its own."""
  evaluate.define_flags()  # --root, --split, --frames_dir, --checkpoint
  sort.define_flags()
  classical.define_flags()
  flags.DEFINE_list("methods", list(METHODS), f"Methods to run, of {', '.join(METHODS)}.")
  flags.DEFINE_integer(
      "max_frames", None, "Only the first N frames of the source (and of the ground truth).")


def open_source(root: str, split: str, frames_dir: str | None,
                max_frames: int | None) -> sources.FrameSource:
  source = sources.open_source(frames_dir or schema.video_path(root, split))
  if max_frames is None:
    return source
  return dataclasses.replace(source, frames=itertools.islice(source.frames, max_frames),
                             total=min(max_frames, source.total or max_frames))


def score(gt: dict, result: runner.Result) -> dict:
  """mottr.evaluate's metrics of a result on the ground-truth frames it processed."""
  processed = {f + 1 for f in result.frames}
  image_ids = sorted(processed.intersection(im["id"] for im in gt["images"]))
  if not image_ids:
    raise UserError("no processed frame is in the annotations; check --split and --frames_dir")
  metrics, _ = evaluate.evaluate(gt, runner.result_coco(result), image_ids,
                                 result.source.frame_step,
                                 edge_tolerance=FLAGS.edge_tolerance)
  return metrics


def table(rows: list[tuple[str, dict, float]]) -> str:
  """The markdown table of (method, metrics, FPS) rows."""
  lines = ["| method | bolt count error | nut count error | HOTA | IDF1 | ID switches | FPS |",
           "|---|---:|---:|---:|---:|---:|---:|"]
  for name, m, fps in rows:
    c, t = m["counts"], m["tracking"]["all"]
    errors = [f"{c['error'][k]:+d} ({c['predicted'][k]}/{c['true'][k]})" for k in ("bolt", "nut")]
    lines.append(f"| {name} | {errors[0]} | {errors[1]} | {t['HOTA']:.3f} | {t['IDF1']:.3f} | "
                 f"{t['IDSW']} | {fps:.1f} |")
  return "\n".join(lines)


def runners(size: tuple[int, int], load_predictor: Callable[[], Any],
            background: classical.ClassicalSettings, tracking: sort.SortSettings
            ) -> dict[str, Callable[[sources.FrameSource], runner.Result]]:
  """One function per method: source -> result (the predictor is loaded once, on first use)."""
  loaded = []

  def predictor():
    if not loaded:
      loaded.append(load_predictor())
    return loaded[0]

  return {
      "classical": lambda source: classical.track_source(source, background, tracking),
      "sort": lambda source: sort.track_detections(
          source, sort.model_detector_from_flags(size, predictor()), tracking),
      "mottr": lambda source: runner.track_source(source, predictor(),
                                                  cli.tracker_settings(predictor())),
  }


def main(argv: list[str]) -> None:
  cli.quiet_logging()
  cli.check_no_arguments(argv)
  f = FLAGS
  if not f.root:
    raise UserError("--root is required: a challenge-layout root with "
                    "annotations/instances_{split}.json")
  unknown = set(f.methods) - set(METHODS)
  if unknown or not f.methods:
    raise UserError(f"--methods {','.join(f.methods)}: choose from {', '.join(METHODS)}")
  if f.frames_dir and not os.path.isdir(f.frames_dir):
    raise UserError(f"{f.frames_dir}: not a directory; pass --frames_dir a folder of NNNN.jpg "
                    "frames")
  if f.max_frames is not None and f.max_frames < 1:
    raise UserError(f"--max_frames {f.max_frames}: must be positive")
  background, tracking = classical.settings_from_flags(), sort.settings_from_flags()
  sort.check_settings(tracking)
  gt = schema.load_annotations(f.root, f.split)
  if f.max_frames is not None:
    gt = dict(gt, images=[im for im in gt["images"] if im["id"] <= f.max_frames],
              annotations=[a for a in gt["annotations"] if a["image_id"] <= f.max_frames])
  first = open_source(f.root, f.split, f.frames_dir, f.max_frames)
  run = runners((first.width, first.height), cli.load_predictor, background,
                tracking)
  rows = []
  for i, name in enumerate(f.methods):
    source = first if i == 0 else open_source(f.root, f.split, f.frames_dir, f.max_frames)
    print(f"{name} on {source.name}:", file=sys.stderr, flush=True)
    result = run[name](source)
    if result.interrupted:
      raise UserError("interrupted; nothing reported")
    rows.append((name, score(gt, result), result.steady_fps))
  print(table(rows))


if __name__ == "__main__":
  define_flags()
  app.run(run_cli(main), flags_parser=cli.flags_parser)
