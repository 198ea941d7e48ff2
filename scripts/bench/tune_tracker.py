"""Sweeps the runtime tracker's thresholds on a validation split (never a test split).

  python scripts/bench/tune_tracker.py --root data/synth_s1 --split val [--checkpoint DIR] [--max_frames 900]
      [--frames_dir ../shared/stroma/frames/val] [--image_ids FIRST-LAST]
      [--birth 0.4,0.5,0.6,0.7] [--keep 0.3,0.4,0.5,0.6] [--duplicate_iou 0.7]
      [--snap_tracks 0,1] [--min_descent 0,10,20,30] [--confirm_window 8] [--fall_slack 0,3] [--nut_weight 1,2.5]

Prints one markdown row per setting (track boxes snapped to detections or not, birth, keep and duplicate IoU thresholds; the birth value is used whatever
the source's frame rate; the motion-plausibility rule's min_descent (0: off), confirm_window and
fall_slack;
the nut weight of the class evidence) with the summed absolute count error, HOTA, MOTA, IDF1, FP,
mAP50 and mAP, best first. E.g. the dense real clip (tuning and diagnosis only, never training):
--root ../shared/stroma --split dense --frames_dir ../shared/stroma/dense.
--image_ids keeps the frames (and annotations) whose image_id lies in FIRST-LAST: tune on one part of
a split, check on another.
"""
import argparse
import itertools

from mottr import evaluate
from mottr import tracker as tracker_lib
from mottr.predictor import load_predictor


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True)
  parser.add_argument("--split", default="val")
  parser.add_argument("--checkpoint")
  parser.add_argument("--max_frames", type=int)
  parser.add_argument("--frames_dir", help="track these frames (NNNN.jpg by image_id), not the video")
  parser.add_argument("--image_ids", help="FIRST-LAST: only the frames with these image_ids")
  parser.add_argument("--birth", default="0.4,0.5,0.6,0.7")
  parser.add_argument("--keep", default="0.3,0.4,0.5,0.6")
  parser.add_argument("--duplicate_iou", default="0.7")
  parser.add_argument("--snap_tracks", default="0", help="0 and/or 1: model.snap_tracks")
  defaults = tracker_lib.TrackerSettings()
  parser.add_argument("--min_descent", default=str(defaults.min_descent), help="0: rule off")
  parser.add_argument("--confirm_window", default=str(defaults.confirm_window))
  parser.add_argument("--fall_slack", default=str(defaults.fall_slack))
  parser.add_argument("--nut_weight", default=str(defaults.nut_weight))
  args = parser.parse_args()
  if args.split == "test":
    raise SystemExit("error: tuning on a test split is not allowed; use val")
  grid = lambda text: [float(v) for v in text.split(",")]
  image_ids = tuple(int(v) for v in args.image_ids.split("-")) if args.image_ids else None
  rows = []
  flags01 = lambda text: [bool(int(v)) for v in text.split(",")]
  for snap in flags01(args.snap_tracks):
    predictor = load_predictor(args.checkpoint, {"model.snap_tracks": snap})
    for birth, keep, dup, descent, window, slack, nut in itertools.product(
        grid(args.birth), grid(args.keep), grid(args.duplicate_iou), grid(args.min_descent),
        grid(args.confirm_window), grid(args.fall_slack), grid(args.nut_weight)):
      if keep > birth:
        continue
      settings = tracker_lib.TrackerSettings(birth_threshold=birth, sparse_birth_threshold=birth,
                                             keep_threshold=keep, duplicate_iou=dup, min_descent=descent,
                                             confirm_window=window, fall_slack=slack,
                                             nut_weight=nut)
      motion = (descent, window, slack, nut)
      m = evaluate.evaluate_predictor(predictor, args.root, args.split, max_frames=args.max_frames,
                                      image_ids=image_ids, frames_dir=args.frames_dir,
                                      settings=settings)
      t = m["tracking"]["all"]
      rows.append((m["counts"]["abs_error"], -t["HOTA"], int(snap), birth, keep, dup, motion,
                   t["HOTA"], t["MOTA"], t["IDF1"], t["FP"],
                   m["detection"]["all"]["mAP50"], m["detection"]["all"]["mAP"], m["counts"]["error"]))
      print(f"snap={int(snap)} birth={birth} keep={keep} dup={dup} "
            f"min_descent={descent} confirm_window={window} fall_slack={slack} nut_weight={nut} "
            f"count_error={m['counts']['error']} HOTA={t['HOTA']:.3f}", flush=True)
  print("| snapped tracks | birth | keep | duplicate IoU | min descent | confirm window | fall slack | nut weight | abs count error | count error | HOTA | MOTA | IDF1 | FP | mAP50 | mAP |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  for (err, _, snap, birth, keep, dup, (descent, window, slack, nut), hota, mota, idf1, fp, ap50, ap,
       per_class) in sorted(rows, key=lambda r: r[:2]):
    print(f"| {snap} | {birth} | {keep} | {dup} | {descent} | {window} | {slack} | {nut} | {err} | {per_class} | "
          f"{hota:.3f} | {mota:.3f} | {idf1:.3f} | {fp} | {ap50:.3f} | {ap:.3f} |")


if __name__ == "__main__":
  main()
