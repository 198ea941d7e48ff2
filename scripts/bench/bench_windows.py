"""Counting from a mid-stream start: a split cut into short windows, each tracked from a fresh start.

  python scripts/bench/bench_windows.py --root DIR --split S [--frames_dir DIR] [--checkpoint DIR]
      [--length 60] [--every 30] [--config.tracker.exit_sliver=0 ...]

A video or stream joined while objects fall holds objects that were never seen entering: the tracker
has to be born on them where they are, and one low in the frame leaves within a few frames. The held-out
second half of the real test video starts so. Each window of `--length` frames, starting every
`--every` frames (image_ids first .. first + length - 1), is tracked from a fresh start
(`mottr.evaluate.track_split`), and the truth and the prediction are counted on the window's frames
by the one exit rule (`mottr.evaluate.exit_counts`): an object still in view on the window's last
frame counts in neither unless it touches the bottom edge there. Prints one markdown row per window
whose counts differ, with every true and predicted exit as its class's initial and its frame within the
window (b3: a bolt that left in the window's fourth frame), then one summary line:
`summary: windows=N exact=K abs_error bolt=.. nut=.. signed bolt=.. nut=..`.
The tracker settings are the model's (its config's tracker section) with `--config.tracker.x=v`
overrides on top, as `mottr.infer` takes them. Evaluation and tuning only: windows of the dense real clip
(`--root ../shared/stroma --split dense --frames_dir ../shared/stroma/dense`) or of synthetic val;
a test split only to report.
"""
import argparse
import sys

from mottr import config_overrides, counting, evaluate, runner, schema
from mottr import tracker as tracker_lib
from mottr.predictor import load_predictor
from mottr.schema import UserError

CLASSES = tuple(schema.CATEGORY_NAMES.values())


def window_starts(num_frames: int, length: int, every: int) -> list[int]:
  """First image_ids of the whole windows of `length` frames, every `every` frames, of a split of
  `num_frames` frames (image_ids 1..num_frames)."""
  if length < 1 or every < 1:
    raise UserError(f"--length {length} and --every {every} must be at least 1")
  return list(range(1, num_frames - length + 2, every))


def window_counts(predictor, root: str, split: str, first: int, length: int, frames_dir: str | None,
                  settings: tracker_lib.TrackerSettings) -> tuple[counting.Counts, counting.Counts]:
  """(true, predicted) counts of the window of image_ids first .. first + length - 1, tracked
  from a fresh start."""
  gt, source, result = evaluate.track_split(predictor, root, split, image_ids=(first, first + length - 1),
                                            frames_dir=frames_dir, settings=settings)
  return evaluate.exit_counts(gt, runner.result_coco(result), source.frame_step, fps=source.fps)


def exits(counts: counting.Counts, first: int) -> str:
  """Each exit as its class's initial and its frame within the window (0 = the window's first)."""
  return " ".join(f"{e.category[0]}{e.frame + 1 - first}" for e in counts.events)


def summary(rows: list[tuple[int, dict[str, int], dict[str, int]]]) -> str:
  """The one summary line of (first, true, predicted) rows."""
  err = lambda row, c: row[2].get(c, 0) - row[1].get(c, 0)
  exact = sum(all(err(r, c) == 0 for c in CLASSES) for r in rows)
  return (f"summary: windows={len(rows)} exact={exact} "
          f"abs_error bolt={sum(abs(err(r, 'bolt')) for r in rows)} nut={sum(abs(err(r, 'nut')) for r in rows)} "
          f"signed bolt={sum(err(r, 'bolt') for r in rows):+d} nut={sum(err(r, 'nut') for r in rows):+d}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True)
  parser.add_argument("--split", default="val")
  parser.add_argument("--frames_dir", help="track these frames (NNNN.jpg by image_id), not the video")
  parser.add_argument("--checkpoint", help="default: the shipped model")
  parser.add_argument("--length", type=int, default=60, help="frames per window")
  parser.add_argument("--every", type=int, default=30, help="frames between window starts")
  rest, overrides = config_overrides.parse_overrides(sys.argv[1:])  # --config.a.b=v, as mottr.infer takes them
  args = parser.parse_args(rest)
  try:
    run(args, overrides)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def run(args: argparse.Namespace, overrides: dict) -> None:
  predictor = load_predictor(args.checkpoint, overrides or None)
  settings = tracker_lib.TrackerSettings.from_config(predictor.config)
  num_frames = len(schema.load_annotations(args.root, args.split)["images"])
  rows = []
  print("| first image_id | true bolt / nut | predicted bolt / nut | true exits | predicted exits |\n"
        "|---|---|---|---|---|", flush=True)
  for first in window_starts(num_frames, args.length, args.every):
    true, predicted = window_counts(predictor, args.root, args.split, first, args.length, args.frames_dir, settings)
    rows.append((first, true.counts, predicted.counts))
    if any(true.counts.get(c, 0) != predicted.counts.get(c, 0) for c in CLASSES):
      pair = lambda d: " / ".join(str(d.get(c, 0)) for c in CLASSES)
      print(f"| {first} | {pair(true.counts)} | {pair(predicted.counts)} | {exits(true, first)} | "
            f"{exits(predicted, first)} |", flush=True)
  print(summary(rows))


if __name__ == "__main__":
  main()
