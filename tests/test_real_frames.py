"""Tests for data_prep.real_frames: YOLO frame reading, val ids by IoU, the physics linker."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mottr import schema
from data_prep import real_frames
from mottr.schema import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "stroma")


def simulate(num_objects: int, seed: int, last_frame: int = 1200):
  """Objects falling from rest with the real physics, sampled every FRAME_STRIDE frames.

  Returns {frame: [(track_id, label, xyxy px)]} of visible (>= 20 px) boxes.
  """
  rng = np.random.default_rng(seed)
  out: dict[int, list] = {}
  for tid in range(1, num_objects + 1):
    t0 = rng.uniform(0, last_frame - 100)
    x, w, h = rng.uniform(64, 560), rng.uniform(30, 100), rng.uniform(30, 150)
    rest_bottom, label, accel = rng.uniform(-60, 10), int(rng.random() < 0.2), rng.normal(0.41, 0.01)
    for f in range(9, last_frame, real_frames.FRAME_STRIDE):
      if f < t0:
        continue
      bottom = rest_bottom + 0.5 * accel * (f - t0) ** 2
      y0, y1 = max(bottom - h, 0.0), min(bottom, 640.0)
      if y1 - y0 >= 20:
        out.setdefault(f, []).append((tid, label, [x + rng.normal(0, 1.5), y0, x + w, y1]))
  return out


def to_frames(sim) -> tuple[list[real_frames.SparseFrame], list[np.ndarray]]:
  frames, ids = [], []
  for f in sorted(sim):
    boxes = np.array([b for _, _, b in sim[f]], np.float64)
    cxcywh = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                       boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1) / 640
    order = np.random.default_rng(f).permutation(len(boxes))  # records are unordered
    frames.append(real_frames.SparseFrame(f + 1, "", np.array([l for _, l, _ in sim[f]], np.int32)[order],
                                          cxcywh.astype(np.float32)[order]))
    ids.append(np.array([t for t, _, _ in sim[f]], np.int32)[order])
  return frames, ids


def test_linker_on_simulated_falls():
  frames, true_ids = to_frames(simulate(60, seed=0))
  pred = real_frames.link_tracks(frames)
  acc = real_frames.link_accuracy(frames, true_ids, pred)
  assert acc["true_links"] > 150
  assert acc["recall"] >= 0.99 and acc["precision"] >= 0.99, acc
  first = [int(i) for ids in pred for i in ids]
  assert sorted(set(first)) == list(range(1, len(set(first)) + 1))  # ids 1.. in order


def test_link_accuracy_counts_a_swapped_pair():
  frames, true_ids = to_frames(simulate(30, seed=1))
  k = next(i for i, ids in enumerate(true_ids[:-1])
           if len(ids) >= 2 and frames[i + 1].frame == frames[i].frame + 10
           and len(set(ids) & set(true_ids[i + 1])) >= 2)
  swapped = [ids.copy() for ids in true_ids]
  common = [t for t in swapped[k] if t in set(true_ids[k + 1])][:2]
  a, b = (int(np.flatnonzero(swapped[k] == t)[0]) for t in common)
  swapped[k][[a, b]] = swapped[k][[b, a]]
  acc = real_frames.link_accuracy(frames, true_ids, swapped)
  assert acc["recall"] < 1.0 and acc["precision"] < 1.0


def _write_sparse(root: str) -> dict:
  """frames/val with two labelled frames and the matching COCO (track ids 5 and 9)."""
  split_dir = os.path.join(root, "frames", "val")
  os.makedirs(split_dir)
  coco = {"images": [{"id": i + 1, "file_name": schema.file_name(i), "width": 640, "height": 640}
                     for i in range(30)], "categories": list(schema.CATEGORIES), "annotations": []}
  for image_id, boxes in ((10, [(5, 1, [100, 0, 40, 30]), (9, 2, [300, 200, 30, 30])]),
                          (20, [(5, 1, [100, 60, 40, 60])])):
    cv2.imwrite(os.path.join(split_dir, "%04d.jpg" % image_id), np.zeros((640, 640, 3), np.uint8))
    with open(os.path.join(split_dir, "%04d.txt" % image_id), "w") as f:
      for tid, cat, (x, y, w, h) in reversed(boxes):
        f.write(f"{cat - 1} {(x + w / 2) / 640} {(y + h / 2) / 640} {w / 640} {h / 640} \n")
        coco["annotations"].append({"id": len(coco["annotations"]), "image_id": image_id,
                                    "category_id": cat, "bbox": [x + 1, y, w, h], "track_id": tid})
  return coco


def test_read_frames_and_ids_from_coco(tmp_path):
  coco = _write_sparse(str(tmp_path))
  frames = real_frames.read_frames(str(tmp_path / "frames"), "val")
  assert [f.image_id for f in frames] == [10, 20] and [f.frame for f in frames] == [9, 19]
  assert frames[0].labels.tolist() == [1, 0]
  np.testing.assert_allclose(frames[0].boxes[1], [120 / 640, 15 / 640, 40 / 640, 30 / 640], atol=1e-6)
  ids = real_frames.ids_from_coco(frames, coco, "coco.json")
  assert [i.tolist() for i in ids] == [[9, 5], [5]]
  coco["annotations"][0]["bbox"] = [500, 500, 30, 30]  # nothing matches the nut any more
  with pytest.raises(UserError, match="0010.txt: box 0 matches no box of image_id 10"):
    real_frames.ids_from_coco(frames, coco, "coco.json")


def test_coco_ground_truth_of_the_labels_scores_its_own_boxes_perfectly(tmp_path):
  from mottr import evaluate
  _write_sparse(str(tmp_path))
  gt = real_frames.coco_ground_truth(real_frames.read_frames(str(tmp_path / "frames"), "val"))
  assert [im["id"] for im in gt["images"]] == [10, 20]
  got = sorted((a["image_id"], a["category_id"], [round(v, 3) for v in a["bbox"]]) for a in gt["annotations"])
  assert got == [(10, 1, [100, 0, 40, 30]), (10, 2, [300, 200, 30, 30]), (20, 1, [100, 60, 40, 60])]
  pred = {"annotations": [dict(a, score=0.9) for a in gt["annotations"]]}
  assert evaluate.detection_metrics(gt, pred, [10, 20])["all"]["mAP"] == pytest.approx(1.0)
  pred["annotations"][0]["bbox"] = [400, 400, 30, 30]
  assert evaluate.detection_metrics(gt, pred, [10, 20])["all"]["mAP"] < 1.0


def test_bad_label_line_is_a_user_error(tmp_path):
  _write_sparse(str(tmp_path))
  with open(tmp_path / "frames" / "val" / "0020.txt", "a") as f:
    f.write("2 0.5 0.5 0.1 0.1\n")
  with pytest.raises(UserError, match=r"0020.txt: line 2: expected `class cx cy w h`"):
    real_frames.read_frames(str(tmp_path / "frames"), "val")
  with pytest.raises(UserError, match="no NNNN.txt label files"):
    real_frames.read_frames(str(tmp_path / "frames"), "train")


def test_linker_accuracy_on_real_val():
  frames_dir = os.path.join(SHARED, "frames")
  ann = os.path.join(SHARED, "annotations", "instances_val.json")
  if not (os.path.isdir(frames_dir) and os.path.isfile(ann)):
    pytest.skip(f"real reference data absent ({SHARED})")
  frames, true_ids = real_frames.split_track_ids(frames_dir, "val", ann)
  assert len(frames) == 159 and len({int(t) for ids in true_ids for t in ids}) == 91
  acc = real_frames.link_accuracy(frames, true_ids, real_frames.link_tracks(frames))
  assert acc["true_links"] > 250
  assert acc["recall"] >= 0.99 and acc["precision"] >= 0.99, acc
  out = subprocess.run([sys.executable, "-m", "data_prep.real_frames", "--frames_dir", frames_dir,
                        "--annotations", ann], cwd=REPO, capture_output=True, text=True,
                       timeout=120, check=True)
  assert out.stdout.startswith("val: 159 frames, 91 tracks") and "linker recall" in out.stdout
