"""Tests for mottr.schema (streaming reader, validation rules) and mottr.validate's summary."""
import copy
import json
import os

import cv2
import numpy as np
import pytest

from mottr import schema
from mottr.schema import UserError
from mottr import validate

REAL_VAL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "stroma",
                        "annotations", "instances_val.json")
NUM_FRAMES = 8


def _boxes(t: int) -> list[tuple[int, int, list[float]]]:
  """(track_id, category_id, xywh) visible in frame t: a bolt falling from the top and a
  nut entering at frame 3."""
  out = []
  for tid, cat, x, w, h, top in ((1, 1, 100.0, 40.0, 60.0, -30.0 + 80 * t),
                                 (2, 2, 400.0, 30.0, 30.0, -20.0 + 60 * (t - 3))):
    y0, y1 = max(top, 0.0), min(top + h, schema.HEIGHT)
    if y1 - y0 > 1:
      out.append((tid, cat, [x, y0, w, y1 - y0]))
  return out


def make_root(root: str, split: str = "val", num_frames: int = NUM_FRAMES) -> dict:
  """A tiny challenge root: red bolts and blue nuts on a grey gradient; returns its COCO."""
  anns, frames = [], []
  for t in range(num_frames):
    img = np.tile(np.linspace(40, 90, schema.WIDTH, dtype=np.uint8)[None, :, None],
                  (schema.HEIGHT, 1, 3))
    for tid, cat, (x, y, w, h) in _boxes(t):
      img[int(y):int(y + h), int(x):int(x + w)] = (230, 20, 20) if cat == 1 else (20, 20, 230)
      anns.append({"id": len(anns), "image_id": t + 1, "category_id": cat, "segmentation": [],
                   "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0, "track_id": tid})
    frames.append(img)
  coco = {"images": [{"id": t + 1, "file_name": schema.file_name(t), "width": schema.WIDTH,
                      "height": schema.HEIGHT} for t in range(num_frames)],
          "annotations": anns, "categories": [dict(c) for c in schema.CATEGORIES]}
  schema.write_annotations(schema.annotation_path(root, split), coco)
  schema.write_video(schema.video_path(root, split), frames)
  return coco


@pytest.fixture(name="root")
def fixture_root(tmp_path):
  make_root(str(tmp_path))
  return str(tmp_path)


def test_iter_frames_streams_rgb_frames_with_annotations(root):
  frames = schema.iter_frames(root, "val")
  assert not isinstance(frames, (list, tuple))
  count = 0
  for fr in frames:
    assert fr.image.shape == (640, 640, 3) and fr.image.dtype == np.uint8
    expected = _boxes(fr.index)
    assert [(a["track_id"], a["bbox"]) for a in fr.annotations] == [(t, b) for t, _, b in expected]
    for _, cat, (x, y, w, h) in expected:
      if h > 8:
        r, _, b = fr.image[int(y + h / 2), int(x + w / 2)].astype(int)
        assert (r > b + 100) if cat == 1 else (b > r + 100)  # RGB, not BGR
    count += 1
  assert count == NUM_FRAMES
  assert schema.present_splits(root) == ["val"]


def _mutations():
  def drop(key):
    return lambda c: c["annotations"][3].pop(key)
  def setbox(box):
    return lambda c: c["annotations"][3].__setitem__("bbox", box)
  return {
      "missing track_id": (drop("track_id"), "annotations[3] (id 3): missing track_id"),
      "missing bbox": (drop("bbox"), "annotations[3] (id 3): missing bbox"),
      "missing image_id": (drop("image_id"), "annotations[3] (id 3): missing image_id"),
      "missing category_id": (drop("category_id"), "annotations[3] (id 3): missing category_id"),
      "unknown category": (lambda c: c["annotations"][3].__setitem__("category_id", 3),
                           "unknown category_id 3"),
      "unknown category entry": (lambda c: c["categories"].append({"id": 3, "name": "screw"}),
                                 "categories[2] (id 3): unknown category"),
      "image_id out of range": (lambda c: c["annotations"][3].__setitem__("image_id", 99),
                                "image_id 99 has no image"),
      "image id mismatch": (lambda c: c["images"][2].__setitem__("id", 7),
                            "images[2] (id 7): expected id 3 and file_name '0002.jpg'"),
      "file_name mismatch": (lambda c: c["images"][2].__setitem__("file_name", "0003.jpg"),
                             "images[2] (id 3): expected id 3 and file_name '0002.jpg'"),
      "zero width": (setbox([100.0, 50.0, 0.0, 30.0]), "non-positive size"),
      "negative height": (setbox([100.0, 50.0, 10.0, -3.0]), "non-positive size"),
      "outside right": (setbox([620.0, 50.0, 40.0, 30.0]), "outside the 640x640 frame"),
      "outside top": (setbox([100.0, -5.0, 40.0, 30.0]), "outside the 640x640 frame"),
      "bbox not numbers": (setbox([100.0, 5.0, "a", 30.0]), "is not 4 finite numbers"),
      "category change": (lambda c: c["annotations"][-1].__setitem__(
          "category_id", 3 - c["annotations"][-1]["category_id"]), "changes category"),
      "duplicate object": (lambda c: c["annotations"].append(
          dict(c["annotations"][3], id=999)), "appears twice in image_id"),
      "too few images": (lambda c: c["images"].pop(), "7 images but the video has 8 frames"),
      "no annotations list": (lambda c: c.pop("annotations"), "annotations: missing or not a list"),
  }


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_each_schema_error_is_one_line_naming_file_record_rule(root, name):
  mutate, expected = _mutations()[name]
  path = schema.annotation_path(root, "val")
  with open(path) as f:
    coco = json.load(f)
  mutate(coco)
  schema.write_annotations(path, coco)
  with pytest.raises(UserError) as e:
    schema.validate_root(root, "val")
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith(path + ": ") and expected in msg, msg


def test_missing_unreadable_and_empty_videos(root, tmp_path):
  path = schema.video_path(root, "val")
  os.remove(path)
  with pytest.raises(UserError, match="val.mp4: missing file"):
    schema.validate_root(root, "val")
  with open(path, "wb") as f:
    f.write(b"not a video at all" * 10)
  with pytest.raises(UserError, match="val.mp4: (unreadable video|video has no readable frames)"):
    schema.validate_root(root, "val")
  cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 640)).release()
  with pytest.raises(UserError, match="val.mp4: (unreadable video|video has no readable frames)"):
    schema.validate_root(root, "val")
  with pytest.raises(UserError, match="instances_train.json: missing file"):
    schema.validate_root(root, "train")


def test_video_of_wrong_size_and_bad_json(root):
  schema.write_video(schema.video_path(root, "val"),
                        [np.zeros((320, 320, 3), np.uint8)] * NUM_FRAMES)
  with pytest.raises(UserError, match="frames are 320x320, expected 640x640"):
    schema.validate_root(root, "val")
  with open(schema.annotation_path(root, "val"), "w") as f:
    f.write("{not json")
  with pytest.raises(UserError, match="instances_val.json: not valid JSON"):
    schema.load_annotations(root, "val")


def test_summary_of_tiny_root(root):
  s = validate.summarize(schema.validate_root(root, "val"))
  assert s["frames"] == NUM_FRAMES
  assert s["boxes"] == sum(len(_boxes(t)) for t in range(NUM_FRAMES))
  assert s["tracks"] == {"bolt": 1, "nut": 1}
  assert s["fell_through"] == {"bolt": 0, "nut": 0}  # both are still in view on the last frame
  assert s["objects_per_frame_max"] == 2
  line = validate.format_summary("val", s)
  assert line.startswith("val: frames=8 boxes=") and "\n" not in line


def test_real_val_annotations_accepted_as_they_are():
  if not os.path.isfile(REAL_VAL):
    pytest.skip(f"real reference data absent ({REAL_VAL})")
  with open(REAL_VAL) as f:
    coco = json.load(f)
  original = copy.deepcopy(coco)
  schema.validate_annotations(coco, REAL_VAL, num_frames=1800)
  assert coco == original
  s = validate.summarize(coco)
  assert (s["frames"], s["boxes"]) == (1800, 4017)
  assert s["tracks"] == {"bolt": 72, "nut": 19}
  assert s["fell_through"] == s["tracks"]  # every real object falls all the way through
  assert s["objects_per_frame_max"] == 5
  assert 0.39 <= s["fall_acceleration"] <= 0.43
