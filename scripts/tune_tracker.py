"""Sweeps the runtime tracker's thresholds on a validation split (never a test split).

  python scripts/tune_tracker.py --root data/synth_s1 --split val [--checkpoint DIR] [--max_frames 900]
      [--frames_dir ../shared/stroma/frames/val] [--image_ids FIRST-LAST]
      [--birth 0.4,0.5,0.6,0.7] [--keep 0.3,0.4,0.5,0.6] [--duplicate_iou 0.7] [--detached_births 0,1]
      [--snap_tracks 0,1]

Prints one markdown row per setting (births decoded with or without the tracks, track boxes snapped
to detections or not, birth, keep and duplicate IoU thresholds; the birth value is used whatever
the source's frame rate) with the summed absolute count error, HOTA, IDF1, mAP50 and mAP, best first.
--image_ids keeps the frames (and annotations) whose image_id lies in FIRST-LAST: tune on one part of
a split, check on another.
"""
import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mottr import evaluate, infer  # noqa: E402
from mottr.predictor import load_predictor  # noqa: E402


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
  parser.add_argument("--detached_births", default="0", help="0 and/or 1: model.detached_births")
  parser.add_argument("--snap_tracks", default="0", help="0 and/or 1: model.snap_tracks")
  args = parser.parse_args()
  if args.split == "test":
    raise SystemExit("error: tuning on a test split is not allowed; use val")
  grid = lambda text: [float(v) for v in text.split(",")]
  image_ids = tuple(int(v) for v in args.image_ids.split("-")) if args.image_ids else None
  rows = []
  flags01 = lambda text: [bool(int(v)) for v in text.split(",")]
  for detached, snap in itertools.product(flags01(args.detached_births), flags01(args.snap_tracks)):
    predictor = load_predictor(args.checkpoint, {"model.detached_births": detached,
                                                 "model.snap_tracks": snap})
    for birth, keep, dup in itertools.product(grid(args.birth), grid(args.keep), grid(args.duplicate_iou)):
      if keep > birth:
        continue
      settings = infer.TrackerSettings(birth_threshold=birth, sparse_birth_threshold=birth,
                                       keep_threshold=keep, duplicate_iou=dup)
      m = evaluate.evaluate_predictor(predictor, args.root, args.split, max_frames=args.max_frames,
                                      image_ids=image_ids, frames_dir=args.frames_dir,
                                      settings=settings)
      t = m["tracking"]["all"]
      rows.append((m["counts"]["abs_error"], -t["HOTA"], int(detached), int(snap), birth, keep, dup, t["HOTA"], t["IDF1"],
                   m["detection"]["all"]["mAP50"], m["detection"]["all"]["mAP"], m["counts"]["error"]))
      print(f"detached={int(detached)} snap={int(snap)} birth={birth} keep={keep} dup={dup} count_error={m['counts']['error']} "
            f"HOTA={t['HOTA']:.3f}", flush=True)
  print("| detached births | snapped tracks | birth | keep | duplicate IoU | abs count error | count error | HOTA | IDF1 | mAP50 | mAP |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for err, _, detached, snap, birth, keep, dup, hota, idf1, ap50, ap, per_class in sorted(rows):
    print(f"| {detached} | {snap} | {birth} | {keep} | {dup} | {err} | {per_class} | {hota:.3f} | {idf1:.3f} | {ap50:.3f} | {ap:.3f} |")


if __name__ == "__main__":
  main()
