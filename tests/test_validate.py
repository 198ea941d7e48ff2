"""Tests for the `python -m mottr.validate` CLI."""
import os
import subprocess
import sys

import numpy as np
import pytest

from mottr import schema

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_root(root: str, split: str, bboxes: list[list[float]]) -> None:
  """Three dark frames; one bolt (track 1) with the given box in each frame."""
  schema.write_video(schema.video_path(root, split),
                        [np.full((640, 640, 3), 50, np.uint8)] * len(bboxes))
  schema.write_annotations(schema.annotation_path(root, split), {
      "images": [{"id": i + 1, "file_name": schema.file_name(i), "width": 640, "height": 640}
                 for i in range(len(bboxes))],
      "annotations": [{"id": i, "image_id": i + 1, "category_id": 1, "bbox": b, "track_id": 1}
                      for i, b in enumerate(bboxes)],
      "categories": list(schema.CATEGORIES)})


def _run(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "mottr.validate", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(name="root")
def fixture_root(tmp_path):
  _write_root(str(tmp_path), "val", [[100, 500, 40, 60], [100, 550, 40, 60], [100, 590, 40, 50]])
  _write_root(str(tmp_path), "train", [[10, 0, 40, 20], [10, 10, 40, 60], [10, 50, 40, 60]])
  return str(tmp_path)


def test_valid_root_prints_one_summary_per_split(root):
  out = _run("--root", root)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.strip().splitlines()
  assert [line.split(":")[0] for line in lines] == ["train", "val"]
  assert lines[1].startswith("val: frames=3 boxes=3 tracks[bolt=1 nut=0] fell_through[bolt=1 nut=0]")
  assert "fell_through[bolt=0 nut=0]" in lines[0]
  only = _run("--root", root, "--split", "val")
  assert only.returncode == 0 and only.stdout.startswith("val: ")


def test_bad_box_exits_nonzero_with_one_line(root):
  _write_root(root, "val", [[100, 500, 40, 60], [100, 550, 0, 60], [100, 590, 40, 50]])
  out = _run("--root", root, "--split", "val")
  assert out.returncode == 2
  err = out.stderr.strip()
  assert "Traceback" not in err and len(err.splitlines()) == 1
  assert "instances_val.json: annotations[1] (id 1): bbox" in err and "non-positive size" in err


def test_missing_video_and_empty_root(root, tmp_path_factory):
  os.remove(schema.video_path(root, "train"))
  out = _run("--root", root)
  assert out.returncode == 2 and "train.mp4: missing file" in out.stderr
  assert len(out.stderr.strip().splitlines()) == 1
  empty = _run("--root", str(tmp_path_factory.mktemp("empty")))
  assert empty.returncode == 2 and "no annotations/instances_{split}.json" in empty.stderr


def test_truncated_video_is_refused(root):
  """The header of a truncated file announces frames that do not decode: counted, not trusted."""
  import cv2  # pylint: disable=g-import-not-at-top
  path = os.path.join(root, "cut.avi")
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 640))
  rng = np.random.default_rng(0)
  for _ in range(3):
    writer.write(rng.integers(0, 255, (640, 640, 3), np.uint8))
  writer.release()
  with open(path, "rb") as f:
    data = f.read()
  with open(schema.video_path(root, "val"), "wb") as f:
    f.write(data[:len(data) // 2])
  out = _run("--root", root, "--split", "val")
  assert out.returncode == 2 and "Traceback" not in out.stderr
  assert out.stderr.strip().splitlines() == [
      f"error: {schema.video_path(root, 'val')}: 2 frames decode but the header announces 3 "
      "(a truncated or damaged file); re-encode or replace it"]
