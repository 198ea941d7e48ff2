"""The Stroma challenge's data format: constants shared by every reader and writer.

A challenge-layout root holds `annotations/instances_{split}.json` (COCO + `track_id`)
beside `images/{split}/{split}.mp4`. `image_id` = 0-based frame index + 1 and
`file_name` = "%04d.jpg" % frame index. Boxes are COCO `xywh` in pixels in files.
"""
import os

WIDTH = 640
HEIGHT = 640
FPS = 30.0
SPLITS = ("train", "val", "test")
CATEGORIES = (
    {"supercategory": "none", "id": 1, "name": "bolt"},
    {"supercategory": "none", "id": 2, "name": "nut"},
)
CATEGORY_NAMES = {c["id"]: c["name"] for c in CATEGORIES}  # 1 -> "bolt", 2 -> "nut"
NUM_CLASSES = len(CATEGORIES)  # model class index = category_id - 1


def annotation_path(root: str, split: str) -> str:
  return os.path.join(root, "annotations", f"instances_{split}.json")


def video_path(root: str, split: str) -> str:
  return os.path.join(root, "images", split, f"{split}.mp4")


def file_name(frame_index: int) -> str:
  return "%04d.jpg" % frame_index
