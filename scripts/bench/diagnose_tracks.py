"""Follows every ground-truth exit of a validation split and asks what the predicted tracks did there.

  python scripts/bench/diagnose_tracks.py --root data/synth_s1 --split val [--max_frames 900] [--checkpoint DIR]
      [--frames_dir ../shared/stroma/dense] [--birth 0.8] [--min_descent 20] [--confirm_window 8]
      [--fall_slack 3] [--stall_window 0] [--nut_weight 2.5] [--smooth_window 0] [--rescue_hits 0]
      [--config.model.snap_tracks=False ...]

e.g. the dense real clip: --root ../shared/stroma --split dense --frames_dir ../shared/stroma/dense

Prints (never on a test split):
- each true exit's outcome: counted, counted with the wrong class, never tracked (no track box at
  IoU > 0.3 in any frame of the object), counted as another object (a counted track covered it but
  followed another object more: e.g. two objects falling together that one track follows), or lost
  before its exit. Each count is credited to one object, the one its track covers most;
- each predicted exit that is not a true one: on no object (a false positive track) or a second
  count of the same object (with the object and the track that counted it again);
- the confusion table of counted exits: true class (or "none": a count with no true exit) vs
  counted class (or "none": a true exit never counted);
- false tracks: predicted tracks whose boxes lie on no ground-truth object (IoU > 0.3) in most of
  their hits, how many live longer than `FALSE_TRACK_FRAMES` frames of the video, and the longest;
- how well the track boxes fit: mean IoU with the best ground-truth box at birth and once carried,
  and the share of ground-truth boxes that some track box covers at IoU >= 0.5.
"""
import argparse
import collections
import dataclasses
import os
import sys

import numpy as np

from mottr import config_overrides
from mottr import counting, evaluate
from mottr import schema
from mottr import tracker as tracker_lib
from mottr.boxes import iou_xywh
from mottr.predictor import load_predictor
from mottr.schema import Track

MATCH_IOU = 0.3  # a track box on an object
FALSE_TRACK_FRAMES = 15  # a false track living longer than this (frames of the video) is reported
NONE = "none"
SETTINGS = ("keep_threshold", "duplicate_window", "union_window", "min_descent", "confirm_window", "fall_slack", "stall_window", "nut_weight",
            "backfill_window", "backfill_track_free", "backfill_fall", "rescue_hits", "rescue_window", "rescue_threshold", "rescue_iou",
            "support_share", "smooth_window", "smooth_gravity")  # tracker settings with a flag of their own (default: the model's)


def _best(box: np.ndarray, others: list[tuple[int, np.ndarray]]) -> tuple[float, int | None]:
  """Highest IoU of `box` with (id, box) pairs, and that id."""
  return max(((float(iou_xywh(box, b)[0, 0]), i) for i, b in others), default=(0.0, None))


def _by_frame(tracks: list[Track]) -> dict[int, list[tuple[int, np.ndarray]]]:
  out = collections.defaultdict(list)
  for t in tracks:
    for f, b in zip(t.frames, t.boxes):
      out[f].append((t.track_id, b))
  return out


def _cover(track: Track, others_at: dict[int, list[tuple[int, np.ndarray]]]) -> collections.Counter:
  """How many of the track's frames each other track's box overlaps it best, at IoU > MATCH_IOU."""
  cover = collections.Counter()
  for f, b in zip(track.frames, track.boxes):
    iou, other = _best(b, others_at.get(f, []))
    if iou > MATCH_IOU:
      cover[other] += 1
  return cover


def diagnose(gt_tracks: list[Track], true: counting.Counts, pred_tracks: list[Track],
             predicted: counting.Counts) -> dict[str, collections.Counter | float]:
  """Outcome counters of true and predicted exits, and box-fit numbers (see the module doc)."""
  pred_at, gt_at = _by_frame(pred_tracks), _by_frame(gt_tracks)
  counted = {e.track_id: e.category for e in predicted.events}
  gt_by_id = {t.track_id: t for t in gt_tracks}
  tracks_by_id = {t.track_id: t for t in pred_tracks}
  # Each count is credited to one object: the one its track covers most.
  credited = collections.defaultdict(list)  # object id -> categories of the counts credited to it
  extra = collections.Counter()
  confusion = collections.Counter()
  twice = []  # (object id, track id) of every count after an object's first
  on_nothing = []  # track ids of the counts on no object
  for e in predicted.events:
    cover = _cover(tracks_by_id[e.track_id], gt_at)
    if not cover:
      extra["on no object"] += 1
      confusion[(NONE, e.category)] += 1
      on_nothing.append(e.track_id)
      continue
    gid = cover.most_common(1)[0][0]
    credited[gid].append(e.category)
    if len(credited[gid]) > 1:
      extra["same object again"] += 1
      confusion[(NONE, e.category)] += 1
      twice.append((gid, e.track_id))
  exits = collections.Counter()
  for e in true.events:
    cover = _cover(gt_by_id[e.track_id], pred_at)
    on_exit = credited.get(e.track_id, [])
    exits["counted" if e.category in on_exit else "counted, wrong class" if on_exit
          else "never tracked" if not cover
          else "counted as another object" if any(t in counted for t in cover)
          else "lost before its exit"] += 1
    confusion[(e.category, e.category if e.category in on_exit else on_exit[0] if on_exit
               else NONE)] += 1
  false_tracks = []  # (frames lived, track) of tracks mostly on no object
  for t in pred_tracks:
    if sum(_cover(t, gt_at).values()) * 2 < len(t.frames):
      false_tracks.append((t.frames[-1] - t.frames[0] + 1, t))
  false_tracks.sort(key=lambda lt: (-lt[0], lt[1].track_id))
  long_false = [(life, t) for life, t in false_tracks if life > FALSE_TRACK_FRAMES]
  fit = {"birth": [], "carried": []}
  for t in pred_tracks:
    for k, (f, b) in enumerate(zip(t.frames, t.boxes)):
      fit["carried" if k else "birth"].append(_best(b, gt_at.get(f, []))[0])
  covered = [_best(b, pred_at.get(f, []))[0] >= 0.5 for g in gt_tracks for f, b in zip(g.frames, g.boxes)]
  return {"exits": exits, "extra": extra, "confusion": confusion, "twice": twice, "on_nothing": on_nothing,
          "false_tracks": len(false_tracks), "long_false_tracks": len(long_false),
          "longest_false_track": long_false[0][1] if long_false else None,
          "iou_birth": float(np.mean(fit["birth"])) if fit["birth"] else 0.0,
          "iou_carried": float(np.mean(fit["carried"])) if fit["carried"] else 0.0,
          "covered": float(np.mean(covered)) if covered else 0.0}


def confusion_markdown(confusion: collections.Counter) -> str:
  """Counted exits as a markdown table: rows true class, columns counted class ("none" = absent)."""
  names = list(schema.CATEGORY_NAMES.values()) + [NONE]
  lines = ["| true \\ counted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
  for true_name in names:
    lines.append(f"| {true_name} | " + " | ".join(
        "-" if true_name == NONE and counted == NONE else str(confusion[(true_name, counted)])
        for counted in names) + " |")
  return "\n".join(lines)


def _describe(t: Track) -> str:
  """track id (class), frames first-last (hits), centre y at both ends, mean box size."""
  cy = lambda b: b[1] + b[3] / 2
  w, h = np.mean(np.asarray(t.boxes)[:, 2:], axis=0)
  return (f"track {t.track_id} ({schema.CATEGORY_NAMES[t.category_id]}), frames {t.frames[0]}-"
          f"{t.frames[-1]} ({len(t.frames)} hits), centre y {cy(t.boxes[0]):.0f} -> "
          f"{cy(t.boxes[-1]):.0f}, x {t.boxes[0][0] + t.boxes[0][2] / 2:.0f}, mean box {w:.0f} x {h:.0f} px")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True)
  parser.add_argument("--split", default="val")
  parser.add_argument("--max_frames", type=int)
  parser.add_argument("--frames_dir", help="track these frames (NNNN.jpg by image_id), not the video")
  parser.add_argument("--checkpoint", help="default: the shipped model")
  parser.add_argument("--birth", type=float, help="birth threshold; default mottr.infer's")
  for name in SETTINGS:
    parser.add_argument(f"--{name}", type=float, help="default mottr.infer's")
  rest, overrides = config_overrides.parse_overrides(sys.argv[1:])  # --config.a.b=v, as mottr.infer takes them
  args = parser.parse_args(rest)
  if args.split == "test":
    raise SystemExit("error: diagnose a val split, never a test split")
  predictor = load_predictor(args.checkpoint, overrides or None)
  settings = tracker_lib.TrackerSettings.from_config(predictor.config)  # the model's, as mottr.infer
  if args.birth is not None:
    settings = dataclasses.replace(settings, birth_threshold=args.birth, sparse_birth_threshold=args.birth)
  for name in SETTINGS:
    if getattr(args, name) is not None:
      settings = dataclasses.replace(settings, **{name: getattr(args, name)})
  gt, source, result = evaluate.track_split(predictor, args.root, args.split, max_frames=args.max_frames,
                                            frames_dir=args.frames_dir, settings=settings)
  gt_tracks = schema.tracks_from_coco(gt)
  final = max(im["id"] for im in gt["images"]) - 1
  true = counting.count_tracks(gt_tracks, final_frame=final, fps=source.fps)
  d = diagnose(gt_tracks, true, result.tracks, result.counts)
  print(f"true exits {len(true.events)} {true.counts}, predicted {len(result.counts.events)} "
        f"{result.counts.counts}")
  print("true exits: " + ", ".join(f"{k} {v}" for k, v in d["exits"].most_common()))
  print("predicted exits that are not true ones: "
        + (", ".join(f"{k} {v}" for k, v in d["extra"].most_common()) or "none"))
  by_id = {t.track_id: t for t in result.tracks}
  for gid, tid in d["twice"]:
    t = by_id[tid]
    print(f"  counted again: object {gid} by track {tid}, frames {t.frames[0]}-{t.frames[-1]} "
          f"({len(t.frames)} hits)")
  for tid in d["on_nothing"]:
    print(f"  counted on no object: {_describe(by_id[tid])}")
  print(confusion_markdown(d["confusion"]))
  line = (f"false tracks (most hits on no object): {d['false_tracks']}, living > "
          f"{FALSE_TRACK_FRAMES} frames: {d['long_false_tracks']}")
  if d["longest_false_track"] is not None:
    line += f"; longest: {_describe(d['longest_false_track'])}"
  print(line)
  print(f"track boxes vs ground truth: mean best IoU {d['iou_birth']:.2f} at birth, "
        f"{d['iou_carried']:.2f} carried; ground-truth boxes covered at IoU >= 0.5: {d['covered']:.2f}")


if __name__ == "__main__":
  main()
