"""Per-frame detection AP of checkpoints (detect queries only, no track queries): the sim-to-real measure.

  python scripts/bench/bench_detection.py --root ../shared/stroma --split val \
      --frames_dir ../shared/stroma/frames/val --checkpoints workdirs/cpu_detect,workdirs/cpu_detect_synth

  python scripts/bench/bench_detection.py --root ../shared/stroma --split train \
      --frames_dir ../shared/stroma/frames/train --checkpoints shipped   # YOLO labels: no annotation file

Each checkpoint (a training workdir or an exported model; "shipped" = the shipped model) runs on
every frame of the source with an empty track set; a model with a crop refiner (`mottr.refiner`) is
scored with its boxes refined and, in a second row, without; each detect query gives one detection per
class (score = that class's probability; its box clipped to the frame, as the tracker writes boxes
and the annotators drew them), scored with COCO mAP (IoU .50:.95) and mAP50 against
the split's annotations on the frames seen (`mottr.evaluate.detection_metrics`). The last column
is each checkpoint's mAP50 over the first one's: with a real-trained checkpoint first and the same
recipe trained on synthetic data only second, it is the sim-to-real ratio (target >= 0.80).
"""
import argparse
import dataclasses
import itertools
import os
import sys

import cv2
import numpy as np

from data_prep import real_frames
from mottr import boxes as boxes_lib
from mottr import evaluate
from mottr import schema
from mottr import sources
from mottr.predictor import load_predictor
from mottr.schema import UserError


def detections(predictor, source: sources.FrameSource) -> tuple[dict, list[int]]:
  """COCO detections (xywh pixels, per-class scores) of every frame; the image ids seen."""
  anns, image_ids = [], []
  size = predictor.input_size
  for index, bgr in source.frames:
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
    predictor.reset()
    out = predictor.refine(bgr, predictor.step(rgb))
    detect = slice(out.num_slots, None)
    boxes = boxes_lib.clip_xywh(boxes_lib.cxcywh_to_xywh_px(np.asarray(out.boxes[detect], np.float64),
                                                          source.width, source.height), source.width, source.height)
    for box, probs in zip(boxes, out.class_scores[detect]):
      for c, p in enumerate(probs):
        anns.append({"image_id": index + 1, "category_id": c + 1, "bbox": box.tolist(),
                     "score": float(p)})
    image_ids.append(index + 1)
  return {"annotations": anns}, image_ids


def ground_truth(root: str, split: str, frames_dir: str | None) -> dict:
  """The split's annotations; without an annotation file, the YOLO labels beside the frames
  (`frames_dir/NNNN.txt`: the real train frames, whose track ids are not needed here)."""
  if frames_dir and not os.path.isfile(schema.annotation_path(root, split)):
    parent, name = os.path.split(os.path.normpath(frames_dir))
    return real_frames.coco_ground_truth(real_frames.read_frames(parent, name))
  return schema.load_annotations(root, split)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", required=True, help="challenge-layout root with the annotations")
  parser.add_argument("--split", default="val")
  parser.add_argument("--frames_dir", default=None, help="frames NNNN.jpg instead of the video")
  parser.add_argument("--checkpoints", required=True, help="comma-separated; 'shipped' allowed")
  parser.add_argument("--max_frames", type=int, default=None)
  args = parser.parse_args()
  try:
    gt = ground_truth(args.root, args.split, args.frames_dir)
    rows = []
    for ckpt in args.checkpoints.split(","):
      predictor = load_predictor(None if ckpt == "shipped" else ckpt)
      for name, refiner in [(ckpt, predictor.refiner)] + [(f"{ckpt} (no refiner)", None)] * bool(predictor.refiner):
        predictor.refiner = refiner
        source = sources.open_source(args.frames_dir or schema.video_path(args.root, args.split))
        source = dataclasses.replace(source, frames=itertools.islice(source.frames, args.max_frames))
        pred, image_ids = detections(predictor, source)
        rows.append((name, evaluate.detection_metrics(gt, pred, image_ids), len(image_ids)))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  first = rows[0][1]["all"]["mAP50"]
  print("| checkpoint | frames | mAP50 | mAP | bolt mAP50 | nut mAP50 | mAP50 / first |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for ckpt, m, n in rows:
    ratio = m["all"]["mAP50"] / first if first > 0 else float("nan")
    print(f"| {ckpt} | {n} | {m['all']['mAP50']:.3f} | {m['all']['mAP']:.3f} | "
          f"{m['bolt']['mAP50']:.3f} | {m['nut']['mAP50']:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
  main()
