"""Writers: the output directory (never loses other files), COCO/MOT track files, counts
(+ interrupted), video and plot."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mottr import schema
from mottr import outputs
from mottr.counting import Counts, Event
from mottr.schema import UserError
from mottr.tracker import Track


def make_tracks():
  a, b = Track(1), Track(2)
  for f in range(3):
    a.add(f, [10.0 + f, 20.0, 30.0, 40.0], 0.9, 0)
  b.add(1, [100.123, 200.0, 5.5, 6.0], 0.75, 1)
  return [b, a]


def _write(directory, name, text):
  with open(os.path.join(directory, name), "w") as f:
    f.write(text)


def _hidden(path):
  return [e for e in os.listdir(path) if e.startswith(".")]


def test_output_dir_keeps_other_files_and_refuses_an_earlier_run(tmp_path):
  target = tmp_path / "out"
  target.mkdir()
  (target / "mine.txt").write_text("keep me")
  (target / "sub").mkdir()
  names = ("x.txt", "y.txt")
  with outputs.output_dir(str(target), names) as tmp:
    _write(tmp, "x.txt", "1")
    _write(tmp, "y.txt", "1")
    assert not (target / "x.txt").exists()  # nothing in place before the block succeeds
  assert sorted(os.listdir(target)) == ["mine.txt", "sub", "x.txt", "y.txt"]  # no lock, no temp
  with pytest.raises(UserError, match=r"out: already holds x.txt, y.txt .*pass --overwrite"):
    with outputs.output_dir(str(target), names):
      raise AssertionError("refused before the block runs")
  with pytest.raises(RuntimeError):  # a failed run changes nothing
    with outputs.output_dir(str(target), names, overwrite=True) as tmp:
      _write(tmp, "x.txt", "2")
      raise RuntimeError
  assert (target / "x.txt").read_text() == "1" and not _hidden(target)
  with outputs.output_dir(str(target), names, overwrite=True) as tmp:
    _write(tmp, "x.txt", "3")  # y.txt is not written this time: the earlier one goes
  assert sorted(os.listdir(target)) == ["mine.txt", "sub", "x.txt"]
  assert (target / "x.txt").read_text() == "3" and (target / "mine.txt").read_text() == "keep me"


def test_output_dir_in_a_full_folder_touches_nothing_else(tmp_path):
  """`--output_dir .` from a repository root: our files are added, nothing is removed."""
  (tmp_path / ".git").mkdir()
  (tmp_path / ".git" / "HEAD").write_text("ref")
  (tmp_path / "README.md").write_text("readme")
  with outputs.output_dir(str(tmp_path), ("counts.json",)) as tmp:
    _write(tmp, "counts.json", "{}")
  assert sorted(os.listdir(tmp_path)) == [".git", "README.md", "counts.json"]
  assert (tmp_path / ".git" / "HEAD").read_text() == "ref"


def test_output_dir_replaces_folders_it_wrote(tmp_path):
  target = tmp_path / "demo"
  for text in ("1", "2"):
    with outputs.output_dir(str(target), ("infer",), overwrite=True) as tmp:
      os.mkdir(os.path.join(tmp, "infer"))
      _write(os.path.join(tmp, "infer"), "a.txt", text)
  assert os.listdir(target) == ["infer"] and (target / "infer" / "a.txt").read_text() == "2"


def test_output_dir_refuses_a_concurrent_writer(tmp_path):
  target = str(tmp_path / "out")
  with outputs.output_dir(target, ("x.txt",)) as tmp:
    assert os.path.exists(os.path.join(target, outputs.LOCK_NAME))
    with pytest.raises(UserError, match="another mottr run is writing into it"):
      with outputs.output_dir(target, ("y.txt",)):
        raise AssertionError("refused before the block runs")
    _write(tmp, "x.txt", "1")
  assert os.listdir(target) == ["x.txt"]  # the refused run left nothing, the lock is gone
  with outputs.output_dir(target, ("y.txt",)) as tmp:  # free again
    _write(tmp, "y.txt", "1")
  assert sorted(os.listdir(target)) == ["x.txt", "y.txt"]


def test_output_dir_removes_what_killed_runs_left(tmp_path):
  target = tmp_path / "out"
  (target / ".mottr.tmp-k1l2").mkdir(parents=True)  # a SIGKILLed run's staging and lock file
  (target / ".mottr.tmp-k1l2" / "annotated.mp4").write_text("half")
  (target / outputs.LOCK_NAME).write_text("")
  (tmp_path / ".out.tmp-abc").mkdir()  # left beside the output by earlier versions
  (tmp_path / ".out.tmp-abc" / "annotated.mp4").write_text("half")
  (tmp_path / ".out.tmp-user").mkdir()  # not ours: it holds a file we never write
  (tmp_path / ".out.tmp-user" / "notes.txt").write_text("keep")
  with outputs.output_dir(str(target), ("annotated.mp4", "counts.json")) as tmp:
    _write(tmp, "counts.json", "{}")
  assert os.listdir(target) == ["counts.json"]
  assert sorted(os.listdir(tmp_path)) == [".out.tmp-user", "out"]


def test_output_dir_failure_removes_created_parents(tmp_path):
  with pytest.raises(ValueError):
    with outputs.output_dir(str(tmp_path / "new" / "deeper" / "out"), ("x.txt",)):
      raise ValueError
  assert os.listdir(tmp_path) == []


def test_unwritable_output_dir_is_a_user_error(tmp_path):
  (tmp_path / "file").write_text("")
  with pytest.raises(UserError, match="is not a directory"):
    with outputs.output_dir(str(tmp_path / "file" / "out"), ("x.txt",)):
      pass
  with pytest.raises(UserError, match="exists and is not a directory"):
    with outputs.output_dir(str(tmp_path / "file"), ("x.txt",)):
      pass
  assert os.listdir(tmp_path) == ["file"]


def test_export_writes_into_a_folder_and_refuses_an_earlier_export(tmp_path):
  import ml_collections  # pylint: disable=g-import-not-at-top
  from mottr import checkpoint  # pylint: disable=g-import-not-at-top
  out = tmp_path / "model"
  out.mkdir()
  (out / "NOTES.md").write_text("mine")
  config, params = ml_collections.ConfigDict({"a": 1}), {"w": np.zeros(3, np.float32)}
  checkpoint.export(config, params, str(out))
  assert sorted(os.listdir(out)) == ["NOTES.md", "config.json", "params.msgpack"]
  with pytest.raises(UserError, match="already holds config.json, params.msgpack.*--overwrite"):
    checkpoint.export(config, params, str(out))
  checkpoint.export(ml_collections.ConfigDict({"a": 2}), params, str(out), overwrite=True)
  assert '"a": 2' in (out / "config.json").read_text()
  assert sorted(os.listdir(out)) == ["NOTES.md", "config.json", "params.msgpack"]


def test_export_cli_refuses_an_earlier_export_in_one_line(tmp_path):
  out = tmp_path / "model"
  out.mkdir()
  (out / "config.json").write_text("{}")
  proc = subprocess.run([sys.executable, "-m", "mottr.export", "--workdir", str(tmp_path / "nope"),
                         "--out", str(out)], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.startswith("error: ") and "already holds config.json" in proc.stderr
  assert "--overwrite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
  assert os.listdir(out) == ["config.json"]


def test_tracks_to_coco_and_mot_txt_agree(tmp_path):
  coco = schema.tracks_to_coco(make_tracks(), range(4), 640, 640)
  assert [im["id"] for im in coco["images"]] == [1, 2, 3, 4]
  assert coco["images"][0]["file_name"] == "0000.jpg"
  schema.validate_annotations(coco, "tracks.json", num_frames=4)
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
  assert record["interrupted"] is False
  assert outputs.counts_record("val", 9, 30.0, 1, counts, interrupted=True)["interrupted"] is True
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
