"""Writers: atomic output directory, COCO/MOT track files, counts record, video and plot."""
import os

import cv2
import numpy as np
import pytest

from data_prep import challenge
from mottr import outputs
from mottr.counting import Counts, Event
from mottr.errors import UserError
from mottr.tracker import Track


def make_tracks():
  a, b = Track(1), Track(2)
  for f in range(3):
    a.add(f, [10.0 + f, 20.0, 30.0, 40.0], 0.9, 0)
  b.add(1, [100.123, 200.0, 5.5, 6.0], 0.75, 1)
  return [b, a]


def test_atomic_output_dir_replaces_only_on_success(tmp_path):
  target = tmp_path / "a" / "b" / "out"
  with outputs.atomic_output_dir(str(target)) as tmp:
    assert not target.exists()
    (open(os.path.join(tmp, "x.txt"), "w")).write("1")
  assert (target / "x.txt").read_text() == "1"
  with outputs.atomic_output_dir(str(target)) as tmp:
    (open(os.path.join(tmp, "y.txt"), "w")).write("2")
  assert os.listdir(target) == ["y.txt"]  # replaced as a whole
  with pytest.raises(RuntimeError):
    with outputs.atomic_output_dir(str(target)) as tmp:
      (open(os.path.join(tmp, "z.txt"), "w")).write("3")
      raise RuntimeError
  assert os.listdir(target) == ["y.txt"] and sorted(os.listdir(target.parent)) == ["out"]


def test_atomic_output_dir_failure_removes_created_parents(tmp_path):
  with pytest.raises(ValueError):
    with outputs.atomic_output_dir(str(tmp_path / "new" / "deeper" / "out")):
      raise ValueError
  assert os.listdir(tmp_path) == []


def test_unwritable_output_dir_is_a_user_error(tmp_path):
  (tmp_path / "file").write_text("")
  with pytest.raises(UserError, match="is not a directory"):
    with outputs.atomic_output_dir(str(tmp_path / "file" / "out")):
      pass
  assert os.listdir(tmp_path) == ["file"]


def test_tracks_to_coco_and_mot_txt_agree(tmp_path):
  coco = outputs.tracks_to_coco(make_tracks(), range(4), 640, 640)
  assert [im["id"] for im in coco["images"]] == [1, 2, 3, 4]
  assert coco["images"][0]["file_name"] == "0000.jpg"
  challenge.validate_annotations(coco, "tracks.json", num_frames=4)
  anns = coco["annotations"]
  assert [(a["id"], a["image_id"], a["track_id"]) for a in anns] == [
      (0, 1, 1), (1, 2, 1), (2, 2, 2), (3, 3, 1)]
  assert anns[2] == {"id": 2, "image_id": 2, "category_id": 2, "segmentation": [],
                     "bbox": [100.12, 200.0, 5.5, 6.0], "area": 33.0, "iscrowd": 0, "track_id": 2,
                     "score": 0.75}
  path = str(tmp_path / "tracks.txt")
  outputs.write_mot_txt(path, coco)
  lines = open(path).read().splitlines()
  assert lines[2] == "2,2,100.12,200.00,5.50,6.00,0.7500,-1,-1,-1"
  assert len(lines) == len(anns)


def test_counts_record_uses_one_based_frames():
  counts = Counts({"bolt": 1, "nut": 1}, [Event(29, 3, "bolt"), Event(59, 1, "nut")])
  record = outputs.counts_record("val", 60, 30.0, 1, counts)
  assert record["counts"] == {"bolt": 1, "nut": 1} and record["frames"] == 60
  assert record["events"][0] == {"frame": 30, "time_s": pytest.approx(0.967), "track_id": 3,
                                 "category": "bolt"}


def test_plot_and_annotated_video(tmp_path):
  png = str(tmp_path / "counts.png")
  outputs.plot_cumulative_counts(png, {"predicted": [Event(10, 1, "bolt")], "true": []}, 60, 30.0)
  assert open(png, "rb").read(4) == b"\x89PNG"
  path = str(tmp_path / "annotated.mp4")
  video = outputs.AnnotatedVideo(path, 30.0, 1, (96, 64))
  tracks = make_tracks()
  for f in range(3):
    video.write(f, np.zeros((64, 96, 3), np.uint8), tracks, {"bolt": f, "nut": 0})
  video.close()
  cap = cv2.VideoCapture(path)
  ok, frame = cap.read()
  assert ok and frame.shape == (64, 96, 3) and frame.max() > 100  # something was drawn
  assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
  cap.release()
