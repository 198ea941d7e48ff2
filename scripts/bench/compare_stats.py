r"""Compares the scene statistics of a generated split with the real Stroma data.

    python scripts/bench/compare_stats.py --root DIR [--split val] [--real ../shared/stroma]

Prints `statistic | real | generated | diff %` and exits 1 when a calibrated statistic is
more than --tolerance away from the real value (2 when an input is missing). Real
annotation statistics come from `REAL/annotations/instances_{split}.json` when it exists,
otherwise from the real val annotations (the only real split with track ids); real
brightness comes from the still frames `REAL/frames/{train,val}/*.jpg`, generated
brightness from the generated video.
"""
import glob
import json
import os
import sys

from absl import app
from absl import flags

from data_prep import scene_stats
from mottr import schema
from mottr.schema import UserError, run_cli


def _define_flags() -> None:
  """CLI flags, defined only when this file runs as a program (tests import it)."""
  flags.DEFINE_string("root", None, "Generated challenge-layout root.")
  flags.DEFINE_string("split", "val", "Split of --root to compare.")
  flags.DEFINE_string(
      "real", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                           "shared", "stroma"),
      "Folder with the real reference data (annotations/instances_val.json, frames/).")
  flags.DEFINE_float("tolerance", 0.10, "Allowed relative difference.")


def _load_json(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError as e:
    raise UserError(f"{path}: not found; generate it with python -m data_prep.synth") from e
  except json.JSONDecodeError as e:
    raise UserError(f"{path}: not valid JSON ({e}); regenerate it") from e


def real_stats(real_dir: str, split: str) -> dict[str, float]:
  """Calibration statistics of the real data in `real_dir`."""
  if not os.path.isdir(real_dir):
    raise UserError(
        f"{real_dir}: real reference folder absent; the comparison needs the real Stroma "
        "annotations and frames (annotations/instances_val.json, frames/{train,val}/*.jpg); "
        "pass --real with their location")
  path = schema.annotation_path(real_dir, split)
  if not os.path.exists(path):
    path = schema.annotation_path(real_dir, "val")
  if not os.path.exists(path):
    raise UserError(f"{path}: real annotations missing; pass --real with a folder holding "
                    "annotations/instances_val.json")
  stats = scene_stats.annotation_stats(_load_json(path))
  frames = sorted(glob.glob(os.path.join(real_dir, "frames", "train", "*.jpg"))
                  + glob.glob(os.path.join(real_dir, "frames", "val", "*.jpg")))
  if not frames:
    raise UserError(f"{real_dir}/frames: no real frames (*.jpg under train/ or val/); "
                    "pass --real with a folder holding them")
  stats.update(scene_stats.brightness_stats(scene_stats.image_frame_means(frames)))
  return stats


def generated_stats(root: str, split: str) -> dict[str, float]:
  """Calibration statistics of a generated split."""
  stats = scene_stats.annotation_stats(_load_json(schema.annotation_path(root, split)))
  video = schema.video_path(root, split)
  if not os.path.exists(video):
    raise UserError(f"{video}: not found; generate it with python -m data_prep.synth")
  means = scene_stats.video_frame_means(video)
  if not len(means):
    raise UserError(f"{video}: no frames could be read; regenerate it")
  stats.update(scene_stats.brightness_stats(means))
  return stats


def compare(real: dict[str, float], generated: dict[str, float], tolerance: float
            ) -> tuple[str, list[str]]:
  """The table as text, and the names of the statistics outside tolerance."""
  lines = [f"{'statistic':18s} | {'real':>9s} | {'generated':>9s} | {'diff %':>7s} | description",
           "-" * 100]
  failed = []
  for stat in scene_stats.STATS:
    r, g = real[stat.name], generated[stat.name]
    if r:
      diff = (g - r) / abs(r)
    else:
      diff = 0.0 if g == r else float("inf")
    ok = abs(diff) <= tolerance
    if not ok:
      failed.append(stat.name)
    lines.append(f"{stat.name:18s} | {r:9.3f} | {g:9.3f} | {100 * diff:+7.1f} | "
                 f"{stat.description}{'' if ok else '  <-- OUT'}")
  return "\n".join(lines), failed


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}; see --help")
  if not flags.FLAGS.root:
    raise UserError("--root is required")
  real = real_stats(os.path.normpath(flags.FLAGS.real), flags.FLAGS.split)
  generated = generated_stats(flags.FLAGS.root, flags.FLAGS.split)
  table, failed = compare(real, generated, flags.FLAGS.tolerance)
  print(table)
  if failed:
    print(f"\n{len(failed)} statistic(s) outside {100 * flags.FLAGS.tolerance:.0f} % of real: "
          f"{', '.join(failed)}")
    sys.exit(1)
  print(f"\nall {len(scene_stats.STATS)} statistics within {100 * flags.FLAGS.tolerance:.0f} % of real")


if __name__ == "__main__":
  _define_flags()
  app.run(run_cli(main))
