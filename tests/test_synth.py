"""Tests for data_prep.synth: tiny generated roots must look like the real challenge data."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mottr import schema
from data_prep import synth
from mottr.schema import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_VAL = os.path.join(REPO, "..", "shared", "stroma", "annotations", "instances_val.json")
FRAMES = 120


def _load(root: str, split: str = "val") -> dict:
  with open(schema.annotation_path(root, split)) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
  out = str(tmp_path_factory.mktemp("synth"))
  synth.generate(out, ["val"], FRAMES, seed=0, progress=False)
  return out


@pytest.fixture(scope="module")
def coco(root) -> dict:
  return _load(root)


def test_generates_objects(coco):
  tracks = {a["track_id"] for a in coco["annotations"]}
  assert len(coco["images"]) == FRAMES
  assert len(tracks) >= 3


def test_same_seed_gives_identical_json(root, tmp_path):
  synth.generate(str(tmp_path), ["val"], FRAMES, seed=0, progress=False)
  with open(schema.annotation_path(root, "val"), "rb") as f:
    first = f.read()
  with open(schema.annotation_path(str(tmp_path), "val"), "rb") as f:
    assert f.read() == first


def test_other_seed_or_split_differs(coco, tmp_path):
  synth.generate(str(tmp_path), ["val", "test"], FRAMES, seed=1, progress=False)
  other_seed, other_split = _load(str(tmp_path), "val"), _load(str(tmp_path), "test")
  assert other_seed["annotations"] != coco["annotations"]
  assert other_split["annotations"] != other_seed["annotations"]


def test_schema_matches_real_annotations(coco):
  if not os.path.exists(REAL_VAL):
    pytest.skip(f"real reference annotations absent ({REAL_VAL}); schema check needs them")
  with open(REAL_VAL) as f:
    real = json.load(f)
  assert list(coco) == list(real)
  assert list(coco["info"]) == list(real["info"])
  assert coco["licenses"] == real["licenses"] == []
  assert list(coco["images"][0]) == list(real["images"][0])
  assert list(coco["annotations"][0]) == list(real["annotations"][0])
  assert coco["categories"] == real["categories"]


def test_ids_categories_and_tracks(coco):
  assert coco["categories"] == [dict(c) for c in schema.CATEGORIES]
  assert [im["id"] for im in coco["images"]] == list(range(1, FRAMES + 1))
  assert [im["file_name"] for im in coco["images"]] == [
      schema.file_name(i) for i in range(FRAMES)]
  anns = coco["annotations"]
  assert [a["id"] for a in anns] == list(range(len(anns)))
  assert [a["image_id"] for a in anns] == sorted(a["image_id"] for a in anns)
  first_seen, category = [], {}
  for a in anns:
    if a["track_id"] not in category:
      first_seen.append(a["track_id"])
    assert category.setdefault(a["track_id"], a["category_id"]) == a["category_id"]
    assert a["iscrowd"] == 0
    assert a["area"] == a["bbox"][2] * a["bbox"][3]
  assert first_seen == list(range(1, len(first_seen) + 1))


def test_boxes_inside_frame_whole_and_positive(coco):
  boxes = np.array([a["bbox"] for a in coco["annotations"]])
  assert np.all(boxes == np.round(boxes))
  assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] > 0)
  assert np.all(boxes[:, 0] + boxes[:, 2] <= schema.WIDTH)
  assert np.all(boxes[:, 1] + boxes[:, 3] <= schema.HEIGHT)


def test_tracks_enter_at_top_and_leave_at_bottom(coco):
  by_track = {}
  for a in coco["annotations"]:
    by_track.setdefault(a["track_id"], []).append(a["bbox"])
  for boxes in by_track.values():
    assert boxes[0][1] == 0 and boxes[0][3] >= synth.MIN_VISIBLE
    assert boxes[-1][1] + boxes[-1][3] == schema.HEIGHT


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools under numpy 2
def test_rle_decodes_to_mask_with_the_annotated_box(coco):
  for a in coco["annotations"]:
    rle = a["segmentation"]
    assert rle["size"] == [schema.HEIGHT, schema.WIDTH]
    mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
    assert mask.sum() > 0
    np.testing.assert_allclose(mask_utils.toBbox(rle | {"counts": rle["counts"].encode()}),
                               a["bbox"], atol=1)


def test_video_reads_back_frame_exact(root, coco):
  capture = cv2.VideoCapture(schema.video_path(root, "val"))
  count, means = 0, []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    assert frame.shape == (schema.HEIGHT, schema.WIDTH, 3)
    means.append(frame.mean())
    count += 1
  capture.release()
  assert count == len(coco["images"])
  assert 10 < min(means) and max(means) < 150


def test_output_passes_the_challenge_validator(root):
  assert len(schema.validate_root(root, "val")["images"]) == FRAMES


def test_empty_segmentation(tmp_path):
  synth.generate_split(str(tmp_path), "val", 70, 0, rle=False, progress=False)
  anns = _load(str(tmp_path))["annotations"]
  assert anns and all(a["segmentation"] == [] for a in anns)


def test_background_images(tmp_path):
  backgrounds = tmp_path / "bg"
  backgrounds.mkdir()
  image = np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8)
  cv2.imwrite(str(backgrounds / "hall.png"), image)
  summary = synth.generate_split(str(tmp_path / "out"), "val", 20, 0,
                                 backgrounds_dir=str(backgrounds), progress=False)
  assert summary["num_frames"] == 20
  assert schema.count_video_frames(summary["video_path"]) == 20
  (backgrounds / "hall.png").unlink()
  with pytest.raises(UserError, match="no .* images"):
    synth.generate_split(str(tmp_path / "out"), "val", 20, 0,
                         backgrounds_dir=str(backgrounds), progress=False)


def test_unknown_split_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="unknown"):
    synth.generate_split(str(tmp_path), "dev", 10, 0, progress=False)


def test_brightness_curve_spans_the_real_range():
  curve = synth.brightness_curve(np.random.default_rng(0), 1800)
  p5, p95 = np.percentile(curve, [5, 95])
  assert abs(p5 - synth.BRIGHTNESS_P5) < 0.5 and abs(p95 - synth.BRIGHTNESS_P95) < 0.5


def test_plan_keeps_its_limits():
  plan = synth.plan_scene(np.random.default_rng(0), 600)
  counts = np.zeros(600, int)
  nuts = np.zeros(600, int)
  for obj in plan:
    frames = obj.annotated_frames()
    counts[frames] += 1
    nuts[frames] += obj.category_id == 2
    assert obj.last < 600 and np.all(obj.boxes[:, 2:] - obj.boxes[:, :2] >= synth.MIN_BOX_SIDE)
  assert counts.max() <= synth.MAX_OBJECTS and nuts.max() <= 1


def test_cli(tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO)
  ok = subprocess.run([sys.executable, "-m", "data_prep.synth", "--out_dir", str(tmp_path),
                       "--splits", "test", "--num_frames", "15", "--empty_segmentation"],
                      cwd=REPO, env=env, capture_output=True, text=True, check=False)
  assert ok.returncode == 0, ok.stderr
  assert "test: 15/15 frames" in ok.stdout
  assert os.path.exists(schema.video_path(str(tmp_path), "test"))
  bad = subprocess.run([sys.executable, "-m", "data_prep.synth", "--out_dir", str(tmp_path),
                        "--splits", "dev"], cwd=REPO, env=env, capture_output=True, text=True,
                       check=False)
  assert bad.returncode == 2
  assert bad.stderr.strip().count("\n") == 0 and "unknown" in bad.stderr
