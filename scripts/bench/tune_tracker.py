"""Sweeps the runtime tracker's thresholds on a validation split (never a test split).

  python scripts/bench/tune_tracker.py --root data/synth_s1 --split val [--checkpoint DIR] [--max_frames 900]
      [--frames_dir ../shared/stroma/frames/val] [--image_ids FIRST-LAST]
      [--birth 0.4,0.5,0.6,0.7] [--keep 0.3,0.4,0.5,0.6] [--duplicate_iou 0.7]
      [--snap_tracks 0,1] [--duplicate_window 0,3] [--union_window 0,3] [--min_descent 0,10,20,30] [--confirm_window 8] [--fall_slack 0,3] [--stall_window 0,15] [--nut_weight 1,2.5]
      [--backfill_window 0,8] [--backfill_threshold 0.2,0.4] [--backfill_track_free 0,1] [--backfill_fall 0,2]
      [--rescue_hits 0,4] [--rescue_window 8] [--rescue_threshold 0.7,0.85] [--rescue_iou 0.2,0.3] [--support_window 0,8] [--support_score 0.05] [--smooth_window 0,3] [--smooth_gravity 0,1]

Prints one markdown row per setting (track boxes snapped to detections or not, birth, keep and duplicate IoU thresholds; the birth value is used whatever
the source's frame rate; the motion-plausibility rule's min_descent (0: off), confirm_window,
fall_slack and stall_window;
the nut weight of the class evidence; the entry backfill's window, score threshold, whether it reads the
track-free decode and the fall it asks of earlier boxes; the rescue births' sightings, window, score and
overlap limit; the box
smoothing window and whether it fits a fall) with the summed absolute count error, HOTA, MOTA, IDF1, FP,
mAP50 and mAP, best first. A setting without its flag takes the model's value (the tracker section of its
config.json, as mottr.infer tracks); birth and keep sweep the grids above. E.g. the dense real clip (tuning and diagnosis only, never training):
--root ../shared/stroma --split dense --frames_dir ../shared/stroma/dense.
--image_ids keeps the frames (and annotations) whose image_id lies in FIRST-LAST: tune on one part of
a split, check on another.
"""
import argparse
import itertools

from mottr import evaluate
from mottr import tracker as tracker_lib
from mottr.predictor import load_predictor

# Settings swept with one value each unless given: the model's own (its config's tracker section).
MODEL_DEFAULT_SETTINGS = ("duplicate_window", "union_window", "min_descent", "confirm_window", "fall_slack", "stall_window", "nut_weight",
                          "backfill_window", "backfill_threshold", "backfill_track_free", "backfill_fall", "rescue_hits", "rescue_window",
                          "rescue_threshold", "rescue_iou", "support_window", "support_score", "support_share", "smooth_window",
                          "smooth_gravity")


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
  parser.add_argument("--snap_tracks", help="0 and/or 1: model.snap_tracks; default: the model's")
  for name in MODEL_DEFAULT_SETTINGS:
    parser.add_argument(f"--{name}", help="values to sweep; default: the model's (its tracker section)")
  args = parser.parse_args()
  if args.split == "test":
    raise SystemExit("error: tuning on a test split is not allowed; use val")
  grid = lambda text: [float(v) for v in text.split(",")]
  config = load_predictor(args.checkpoint).config
  model = tracker_lib.TrackerSettings.from_config(config)
  args.snap_tracks = args.snap_tracks or str(int(bool(config.model.snap_tracks)))
  for name in MODEL_DEFAULT_SETTINGS:
    if getattr(args, name) is None:
      setattr(args, name, str(float(getattr(model, name))))
  image_ids = tuple(int(v) for v in args.image_ids.split("-")) if args.image_ids else None
  names = {"birth_threshold": args.birth, "keep_threshold": args.keep, "duplicate_iou": args.duplicate_iou,
           **{name: getattr(args, name) for name in MODEL_DEFAULT_SETTINGS}}
  rows = []
  for snap in [bool(int(v)) for v in args.snap_tracks.split(",")]:
    predictor = load_predictor(args.checkpoint, {"model.snap_tracks": snap})
    for values in itertools.product(*(grid(v) for v in names.values())):
      chosen = dict(zip(names, values))
      if chosen["keep_threshold"] > chosen["birth_threshold"]:
        continue
      settings = tracker_lib.TrackerSettings(sparse_birth_threshold=chosen["birth_threshold"], **chosen)
      m = evaluate.evaluate_predictor(predictor, args.root, args.split, max_frames=args.max_frames,
                                      image_ids=image_ids, frames_dir=args.frames_dir,
                                      settings=settings)
      t = m["tracking"]["all"]
      rows.append((m["counts"]["abs_error"], -t["HOTA"], int(snap), values, m["counts"]["error"], t["HOTA"],
                   t["MOTA"], t["IDF1"], t["FP"], m["detection"]["all"]["mAP50"], m["detection"]["all"]["mAP"]))
      print(f"snap={int(snap)} " + " ".join(f"{k}={v}" for k, v in chosen.items())
            + f" count_error={m['counts']['error']} HOTA={t['HOTA']:.3f}", flush=True)
  print("| snapped tracks | " + " | ".join(n.replace("_", " ") for n in names)
        + " | abs count error | count error | HOTA | MOTA | IDF1 | FP | mAP50 | mAP |")
  print("|---" * (len(names) + 9) + "|")
  for err, _, snap, values, per_class, hota, mota, idf1, fp, ap50, ap in sorted(rows, key=lambda r: r[:2]):
    print(f"| {snap} | " + " | ".join(str(v) for v in values)
          + f" | {err} | {per_class} | {hota:.3f} | {mota:.3f} | {idf1:.3f} | {fp} | {ap50:.3f} | {ap:.3f} |")


if __name__ == "__main__":
  main()
