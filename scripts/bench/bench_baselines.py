"""Classical, SORT and mottr on the same split, scored alike: one markdown table.

  python scripts/bench_baselines.py --root DIR --split S [--checkpoint DIR] [--frames_dir DIR]
                                    [--methods classical,sort,mottr] [--max_frames N]

Runs each method end to end on `images/{S}/{S}.mp4` (or on --frames_dir, frames named NNNN.jpg
by image_id), in process: `mottr.baselines.classical`, `mottr.baselines.sort` (our detector
without track queries) and `mottr.infer` (the MOTR tracker), the last two sharing one loaded
--checkpoint (default: the shipped model). Each result is scored by `mottr.evaluate.evaluate`
against `annotations/instances_{S}.json`, and stdout gets one table: count error per class
(predicted - true, with predicted/true), HOTA, IDF1 and ID switches over both classes, and the
steady frames per second (after infer.WARMUP_FRAMES frames). Tracker flags of the three CLIs
apply (--birth_threshold ... for mottr, --score_threshold/--match_iou/--min_hits for SORT and the
classical tracker, --fg_threshold for classical, --miss_tolerance and --edge_tolerance for all).
"""
import dataclasses
import itertools
import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from data_prep import challenge  # noqa: E402
from mottr import evaluate  # noqa: E402  (defines --root, --split, --frames_dir)
from mottr import infer  # noqa: E402
from mottr.baselines import classical, sort  # noqa: E402
from mottr.errors import UserError, run_cli  # noqa: E402

METHODS = ("classical", "sort", "mottr")

_METHODS = flags.DEFINE_list("methods", list(METHODS), f"Methods to run, of {', '.join(METHODS)}.")
_MAX_FRAMES = flags.DEFINE_integer(
    "max_frames", None, "Only the first N frames of the source (and of the ground truth).")


def open_source(root: str, split: str, frames_dir: str | None,
                max_frames: int | None) -> infer.FrameSource:
  source = infer.open_source(frames_dir or challenge.video_path(root, split))
  if max_frames is None:
    return source
  return dataclasses.replace(source, frames=itertools.islice(source.frames, max_frames),
                             total=min(max_frames, source.total or max_frames))


def score(gt: dict, result: infer.Result) -> dict:
  """mottr.evaluate's metrics of a result on the ground-truth frames it processed."""
  processed = {f + 1 for f in result.frames}
  image_ids = sorted(processed.intersection(im["id"] for im in gt["images"]))
  if not image_ids:
    raise UserError("no processed frame is in the annotations; check --split and --frames_dir")
  metrics, _ = evaluate.evaluate(gt, infer.result_coco(result), image_ids,
                                 result.source.frame_step,
                                 edge_tolerance=flags.FLAGS.edge_tolerance)
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
            ) -> dict[str, Callable[[infer.FrameSource], infer.Result]]:
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
      "mottr": lambda source: infer.track_source(source, predictor(), infer.settings_from_flags()),
  }


def main(argv: list[str]) -> None:
  infer.quiet_logging()
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}; see --help")
  f = flags.FLAGS
  if not f.root:
    raise UserError("--root is required: a challenge-layout root with "
                    "annotations/instances_{split}.json")
  unknown = set(_METHODS.value) - set(METHODS)
  if unknown or not _METHODS.value:
    raise UserError(f"--methods {','.join(_METHODS.value)}: choose from {', '.join(METHODS)}")
  if f.frames_dir and not os.path.isdir(f.frames_dir):
    raise UserError(f"{f.frames_dir}: not a directory; pass --frames_dir a folder of NNNN.jpg "
                    "frames")
  if _MAX_FRAMES.value is not None and _MAX_FRAMES.value < 1:
    raise UserError(f"--max_frames {_MAX_FRAMES.value}: must be positive")
  background, tracking = classical.settings_from_flags(), sort.settings_from_flags()
  sort.check_settings(tracking)
  gt = challenge.load_annotations(f.root, f.split)
  if _MAX_FRAMES.value is not None:
    gt = dict(gt, images=[im for im in gt["images"] if im["id"] <= _MAX_FRAMES.value],
              annotations=[a for a in gt["annotations"] if a["image_id"] <= _MAX_FRAMES.value])
  first = open_source(f.root, f.split, f.frames_dir, _MAX_FRAMES.value)
  run = runners((first.width, first.height), infer.load_predictor_from_flags, background,
                tracking)
  rows = []
  for i, name in enumerate(_METHODS.value):
    source = first if i == 0 else open_source(f.root, f.split, f.frames_dir, _MAX_FRAMES.value)
    print(f"{name} on {source.name}:", file=sys.stderr, flush=True)
    result = run[name](source)
    if result.interrupted:
      raise UserError("interrupted; nothing reported")
    rows.append((name, score(gt, result), result.steady_fps))
  print(table(rows))


if __name__ == "__main__":
  app.run(run_cli(main), flags_parser=infer.flags_parser)
