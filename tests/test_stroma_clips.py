"""Tests for the stroma_clips TFDS builder: synthetic video and sparse frames round trips."""
import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from mottr import schema
from data_prep import synth
from data_prep.stroma_clips import StromaClips, build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "stroma")


def _records(path: str, split: str) -> list[dict]:
  ds = tfds.builder_from_directory(path).as_data_source(split)
  return [ds[i] for i in range(len(ds))]


NUM_FRAMES = 60


@pytest.fixture(name="synth_root", scope="module")
def fixture_synth_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("synth"))
  synth.generate_split(root, "val", num_frames=NUM_FRAMES, seed=0, progress=False)
  return root


def test_video_root_round_trip(synth_root, tmp_path):
  root, out = synth_root, str(tmp_path / "tfds")
  coco = schema.validate_root(root, "val")
  assert len({a["track_id"] for a in coco["annotations"]}) >= 2
  path = build(root, out)
  assert path == os.path.join(out, "stroma_clips", "r256", "1.0.0")
  records = _records(path, "val")
  assert [r["frame"] for r in records] == list(range(NUM_FRAMES))
  assert {r["video"] for r in records} == {b"val"} and {r["stride"] for r in records} == {1}
  by_image = schema.annotations_by_image(coco)
  source = {fr.index: fr.image for fr in schema.iter_frames(root, "val")}
  for r in records:
    anns = by_image.get(r["frame"] + 1, [])
    obj = r["objects"]
    assert [int(t) for t in obj["track_id"]] == [a["track_id"] for a in anns]
    assert [int(l) for l in obj["label"]] == [a["category_id"] - 1 for a in anns]
    for box, a, edge in zip(obj["bbox"], anns, obj["touches_edge"]):
      x, y, w, h = a["bbox"]
      np.testing.assert_allclose(box, [(x + w / 2) / 640, (y + h / 2) / 640, w / 640, h / 640], atol=1e-4)
      assert bool(edge) == (x <= 2 or y <= 2 or x + w >= 638 or y + h >= 638)
    image = r["image"].astype(int)
    assert r["image"].shape == (256, 256, 3) and r["image"].dtype == np.uint8
    expected = cv2.resize(source[r["frame"]], (256, 256), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(image - expected).mean() < 3  # RGB when decoded, not BGR
    assert np.abs(image - expected).mean() + 2 < np.abs(image - expected[..., ::-1]).mean()


def test_resolution_configs(synth_root, tmp_path):
  names = [c.name for c in StromaClips.BUILDER_CONFIGS]
  assert names[0] == "r256" and {"r320", "r192"} <= set(names)
  path = build(synth_root, str(tmp_path / "tfds"), "r192")
  records = _records(path, "val")
  assert len(records) == NUM_FRAMES and records[0]["image"].shape == (192, 192, 3)


def _write_frame(split_dir, image_id: int, lines: list[str]) -> None:
  split_dir.mkdir(parents=True, exist_ok=True)
  cv2.imwrite(str(split_dir / ("%04d.jpg" % image_id)), np.zeros((640, 640, 3), np.uint8))
  (split_dir / ("%04d.txt" % image_id)).write_text("".join(l + "\n" for l in lines))


def test_sparse_frames_root(tmp_path):
  root = str(tmp_path)
  # val: a nut (track 9) and a bolt entering at the top (track 5); ids from the COCO file.
  _write_frame(tmp_path / "frames" / "val", 10, ["1 0.5 0.5 0.05 0.05", "0 0.2 0.02 0.06 0.04"])
  _write_frame(tmp_path / "frames" / "val", 20, ["0 0.2 0.1 0.06 0.1"])
  pixels = lambda cx, cy, w, h: [(cx - w / 2) * 640, (cy - h / 2) * 640, w * 640, h * 640]
  anns = [(10, 2, 9, pixels(0.5, 0.5, 0.05, 0.05)), (10, 1, 5, pixels(0.2, 0.02, 0.06, 0.04)),
          (20, 1, 5, pixels(0.2, 0.1, 0.06, 0.1))]
  schema.write_annotations(schema.annotation_path(root, "val"), {
      "images": [{"id": i + 1, "file_name": schema.file_name(i), "width": 640, "height": 640}
                 for i in range(30)],
      "annotations": [{"id": k, "image_id": i, "category_id": c, "bbox": b, "track_id": t}
                      for k, (i, c, t, b) in enumerate(anns)],
      "categories": list(schema.CATEGORIES)})
  for image_id, cy in ((100, 0.05), (110, 0.25), (120, 0.6)):  # train: one falling nut, no ids
    _write_frame(tmp_path / "frames" / "train", image_id, [f"1 0.5 {cy} 0.05 0.08"])
  path = build(root, str(tmp_path / "tfds"))
  val = _records(path, "val")
  assert [r["frame"] for r in val] == [9, 19] and {r["stride"] for r in val} == {10}
  assert {r["video"] for r in val} == {b"frames/val"}
  assert [[int(t) for t in r["objects"]["track_id"]] for r in val] == [[9, 5], [5]]
  assert [bool(e) for e in val[0]["objects"]["touches_edge"]] == [False, True]
  train_records = _records(path, "train")
  assert [r["frame"] for r in train_records] == [99, 109, 119]
  assert [[int(t) for t in r["objects"]["track_id"]] for r in train_records] == [[1], [1], [1]]
  np.testing.assert_allclose(train_records[1]["objects"]["bbox"][0], [0.5, 0.25, 0.05, 0.08], atol=1e-6)


def test_cli_and_no_tensorflow(synth_root, tmp_path):
  assert importlib.util.find_spec("tensorflow") is None
  root, out = synth_root, str(tmp_path / "tfds")
  run = lambda *args: subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True,
                                     text=True, timeout=300, check=False)
  ok = run("-m", "data_prep.stroma_clips.build", "--manual_dir", root, "--data_dir", out)
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert ok.stdout.strip().splitlines()[-1] == f"{os.path.join(out, 'stroma_clips', 'r256', '1.0.0')}: val={NUM_FRAMES}"
  (tmp_path / "empty").mkdir()
  bad = run("-m", "data_prep.stroma_clips.build", "--manual_dir", str(tmp_path / "empty"),
            "--data_dir", str(tmp_path / "out2"))
  assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
  assert bad.stderr.startswith("error: ") and "neither a challenge root" in bad.stderr
  no_tf = run("-c", "import sys; import data_prep.stroma_clips, mottr.input; "
              "assert 'tensorflow' not in sys.modules")
  assert no_tf.returncode == 0, no_tf.stderr[-2000:]


def test_real_sparse_frames(tmp_path):
  if not os.path.isdir(os.path.join(SHARED, "frames")):
    pytest.skip(f"real reference data absent ({SHARED})")
  path = build(SHARED, str(tmp_path), "r192")
  info = tfds.builder_from_directory(path).info
  assert {k: v.num_examples for k, v in info.splits.items()} == {"train": 677, "val": 159}
  val = _records(path, "val")
  assert all(b["frame"] - a["frame"] >= 10 for a, b in zip(val, val[1:]))
  assert len({int(t) for r in val for t in r["objects"]["track_id"]}) == 91
