"""Validates a challenge-layout root and prints a summary per split.

  python -m mottr.validate --root DIR [--split val]      (or: mottr-validate --root DIR)

A problem is printed as one line (file, record, rule) and the exit status is 2. The summary
counts the objects that fell through by the one rule of `mottr.counting`.
"""
import sys
from typing import Any

from absl import app
from absl import flags
import numpy as np

from mottr import counting
from mottr import schema
from mottr.schema import UserError, run_cli


def fall_acceleration(track: schema.Track, min_points: int = 5) -> float | None:
  """Vertical acceleration (px/frame^2) of a track from a quadratic fit of the centre
  of its boxes that touch neither the top nor the bottom edge; None if too few."""
  boxes = np.asarray(track.boxes, np.float64).reshape(-1, 4)
  y, h = boxes[:, 1], boxes[:, 3]
  inside = (y > schema.EDGE_TOL_PX) & (y + h < schema.HEIGHT - schema.EDGE_TOL_PX)
  frames = np.asarray(track.frames, np.int64)[inside]
  if len(frames) < min_points or frames[-1] - frames[0] < 2 * min_points:
    return None
  return float(2 * np.polyfit(frames - frames[0], (y + h / 2)[inside], 2)[0])


def summarize(coco: dict[str, Any]) -> dict[str, Any]:
  """Counts and motion statistics of a validated split."""
  all_tracks = schema.tracks_from_coco(coco)
  per_frame = np.zeros(len(coco["images"]), np.int64)
  for ann in coco["annotations"]:
    per_frame[ann["image_id"] - 1] += 1
  accels = [a for a in map(fall_acceleration, all_tracks) if a is not None]
  names = schema.CATEGORY_NAMES.values()
  return {
      "frames": len(coco["images"]),
      "boxes": len(coco["annotations"]),
      "tracks": {n: sum(schema.CATEGORY_NAMES[t.category_id] == n for t in all_tracks)
                 for n in names},
      "fell_through": dict(counting.count_coco(coco).counts),
      "objects_per_frame_mean": float(per_frame.mean()) if len(per_frame) else 0.0,
      "objects_per_frame_max": int(per_frame.max()) if len(per_frame) else 0,
      "fall_acceleration": float(np.mean(accels)) if accels else float("nan"),
  }


def format_summary(split: str, s: dict[str, Any]) -> str:
  """One line per split, as printed by `python -m mottr.validate`."""
  per_class = lambda d: " ".join(f"{k}={v}" for k, v in d.items())
  return (f"{split}: frames={s['frames']} boxes={s['boxes']} tracks[{per_class(s['tracks'])}] "
          f"fell_through[{per_class(s['fell_through'])}] "
          f"objects/frame mean={s['objects_per_frame_mean']:.2f} max={s['objects_per_frame_max']} "
          f"fall_accel={s['fall_acceleration']:.3f} px/frame^2")


def _define_flags() -> None:
  """CLI flags, defined only when this module runs as a program."""
  flags.DEFINE_string("root", None, "Challenge-layout root directory.", required=True)
  flags.DEFINE_list("split", None, "Splits to check; default: every split "
                    "with an annotations/instances_{split}.json.")


def main(argv: list[str]) -> None:
  del argv
  splits = flags.FLAGS.split or schema.present_splits(flags.FLAGS.root)
  if not splits:
    raise UserError(f"{flags.FLAGS.root}: no annotations/instances_{{split}}.json; "
                    "expected a challenge-layout root")
  for split in splits:
    coco = schema.validate_root(flags.FLAGS.root, split)
    print(format_summary(split, summarize(coco)), flush=True)


def cli() -> None:
  """Console script `mottr-validate`."""
  _define_flags()
  if not getattr(sys.modules["__main__"], "__doc__", None):
    sys.modules["__main__"].__doc__ = __doc__  # --help of the console script mottr-validate
  app.run(run_cli(main))


if __name__ == "__main__":
  cli()
