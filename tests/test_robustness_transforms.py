"""scripts/bench/transforms.py: transformed copies keep their ground truth aligned."""
import os

import cv2
import numpy as np
import pytest
import transforms  # scripts/bench (pytest's pythonpath, pyproject.toml)

from data_prep import synth
from mottr import counting
from mottr import schema
from mottr.schema import UserError

SPLIT = "val"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("clean"))
  synth.generate_split(path, SPLIT, 120, 3, progress=False)
  return path


def frames_of(root_dir):
  cap = cv2.VideoCapture(schema.video_path(root_dir, SPLIT))
  out = []
  while True:
    ok, bgr = cap.read()
    if not ok:
      return np.stack(out).astype(np.float64)
    out.append(bgr)


def test_kept_frames_end_on_the_last_frame():
  assert list(transforms.kept_frames(10, 3)) == [0, 3, 6, 9]
  assert list(transforms.kept_frames(11, 3)) == [1, 4, 7, 10]
  assert list(transforms.kept_frames(5, 2)) == [0, 2, 4]
  assert list(transforms.kept_frames(4, 1)) == [0, 1, 2, 3]
  assert not transforms.kept_frames(0, 2)


@pytest.mark.parametrize("name,stride", [("stride2", 2), ("stride3", 3)])
def test_strided_copy_keeps_ground_truth_aligned(root, tmp_path, name, stride):
  gt = schema.validate_root(root, SPLIT)
  out = str(tmp_path / name)
  copy = transforms.build_copy(root, SPLIT, name, out)
  assert schema.validate_root(out, SPLIT) == copy  # ids 1..M, file names, mp4 frames == M
  kept = list(transforms.kept_frames(120, stride))
  assert kept[-1] == 119
  assert schema.count_video_frames(schema.video_path(out, SPLIT)) == len(kept)
  assert [im["id"] for im in copy["images"]] == list(range(1, len(kept) + 1))
  assert transforms.container_fps(schema.video_path(out, SPLIT)) == pytest.approx(30 / stride)
  assert copy["info"]["fps"] == pytest.approx(30 / stride)

  original = {(a["image_id"] - 1, a["track_id"]): a for a in gt["annotations"]}
  expected = {(j, t) for (f, t) in original for j, k in enumerate(kept) if k == f}
  got = {(a["image_id"] - 1, a["track_id"]): a for a in copy["annotations"]}
  assert set(got) == expected and expected
  for (j, t), a in got.items():
    o = original[(kept[j], t)]
    assert a["bbox"] == o["bbox"] and a["category_id"] == o["category_id"]
  assert [a["id"] for a in copy["annotations"]] == list(range(len(got)))
  assert counting.count_coco(copy).counts == counting.count_coco(gt, fps=30.0).counts
  assert sum(counting.count_coco(gt, fps=30.0).counts.values()) >= 2

  # Frame j of the copy is frame kept[j] of the original, not a neighbour: compare them where
  # objects move (their boxes in both frames).
  clean, strided = frames_of(root), frames_of(out)
  boxes = schema.annotations_by_image(gt)
  checked = 0
  for j, k in enumerate(kept[:-1]):
    region = np.zeros(clean.shape[1:3], bool)
    for a in boxes.get(k + 1, []) + boxes.get(k + 2, []):
      x, y, w, h = (int(round(v)) for v in a["bbox"])
      region[y:y + h, x:x + w] = True
    if region.sum() > 2000:
      diff = lambda frame: np.abs(strided[j] - frame)[region].mean()
      assert diff(clean[k]) < 0.5 * diff(clean[k + 1]), j
      checked += 1
  assert checked > 5


def test_photometric_copies_have_identical_annotations(root, tmp_path):
  gt = schema.validate_root(root, SPLIT)
  clean = frames_of(root)[:60]
  for name in ("dark", "bright", "noise_jpeg"):
    out = str(tmp_path / name)
    copy = transforms.build_copy(root, SPLIT, name, out, max_frames=60)
    assert schema.validate_root(out, SPLIT) == copy
    assert copy["images"] == gt["images"][:60]
    assert copy["annotations"] == [a for a in gt["annotations"] if a["image_id"] <= 60]
    assert copy["info"]["fps"] == 30.0
    frames = frames_of(out)
    assert frames.shape == clean.shape
    gain = transforms.VARIANTS[name].gain
    # Re-encoding (mp4v) shifts levels by ~2 and adds ~1.5 of error; JPEG at quality 20 removes
    # much of the noise it compresses.
    assert frames.mean() == pytest.approx(np.clip(clean * gain, 0, 255).mean(), abs=4.0)
    residual = (frames - np.clip(clean * gain, 0, 255)).std()
    assert (residual > 3.0) == (name == "noise_jpeg"), (name, residual)


def test_mirror_copy_flips_frames_and_boxes_and_keeps_the_counts(root, tmp_path):
  gt = schema.validate_root(root, SPLIT)
  out = str(tmp_path / "mirror")
  copy = transforms.build_copy(root, SPLIT, "mirror", out, max_frames=60)
  assert schema.validate_root(out, SPLIT) == copy
  clean = [a for a in gt["annotations"] if a["image_id"] <= 60]
  assert [(a["track_id"], a["bbox"][1:]) for a in copy["annotations"]] == [
      (a["track_id"], a["bbox"][1:]) for a in clean]
  for a, b in zip(copy["annotations"], clean):
    assert a["bbox"][0] + a["bbox"][2] / 2 == pytest.approx(640 - (b["bbox"][0] + b["bbox"][2] / 2))
  assert transforms.mirrored(transforms.mirrored(gt)) == gt
  first = [a for a in gt["annotations"] if a["image_id"] <= 60]
  assert counting.count_coco(copy).counts == counting.count_coco(dict(gt, annotations=first)).counts
  frames, original = frames_of(out), frames_of(root)[:60]
  # Re-encoding (mp4v) leaves ~2 levels of error; the unflipped frames differ far more.
  assert np.abs(frames - original[:, :, ::-1]).mean() < 4.0 < np.abs(frames - original).mean()


def test_max_frames_cuts_before_striding(root, tmp_path):
  copy = transforms.build_copy(root, SPLIT, "stride3", str(tmp_path), max_frames=61)
  assert len(copy["images"]) == 21  # frames 0, 3, ..., 60
  assert max(a["image_id"] for a in copy["annotations"]) <= 21
  gt = schema.validate_root(root, SPLIT)
  n = sum(a["image_id"] <= 61 and (a["image_id"] - 1) % 3 == 0 for a in gt["annotations"])
  assert len(copy["annotations"]) == n


def test_copies_are_reused_only_when_built_the_same_way(root, tmp_path):
  out = str(tmp_path)
  path = schema.annotation_path(out, SPLIT)
  first = transforms.build_copy(root, SPLIT, "noise_jpeg", out, max_frames=10)
  stamp = os.stat(path).st_mtime_ns
  assert transforms.build_copy(root, SPLIT, "noise_jpeg", out, max_frames=10) == first
  assert os.stat(path).st_mtime_ns == stamp
  other = transforms.build_copy(root, SPLIT, "noise_jpeg", out, max_frames=10, seed=1)
  assert other["info"]["transform"]["seed"] == 1 and os.stat(path).st_mtime_ns != stamp
  assert schema.count_video_frames(schema.video_path(out, SPLIT)) == 10


def test_unknown_variant_is_a_user_error(root, tmp_path):
  with pytest.raises(UserError, match="unknown variant 'fog'"):
    transforms.build_copy(root, SPLIT, "fog", str(tmp_path))


def test_transform_frame():
  rng = np.random.default_rng(0)
  frame = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (8, 1, 3))
  dark = transforms.transform_frame(frame, transforms.VARIANTS["dark"], rng)
  np.testing.assert_array_equal(dark[0, :, 0], np.rint(np.arange(256) * 0.45))
  bright = transforms.transform_frame(frame, transforms.VARIANTS["bright"], rng)
  assert bright[0, 200, 0] == 255 and bright[0, 100, 0] == 160
  noisy = transforms.transform_frame(frame, transforms.Variant(noise_sigma=12.0), rng)
  assert (noisy.astype(float) - frame)[:, 20:-20].std() == pytest.approx(12.0, abs=0.5)
  degraded = transforms.transform_frame(frame, transforms.VARIANTS["noise_jpeg"], rng)
  assert 2 < (degraded.astype(float) - frame).std() < 12
  assert np.abs(degraded.astype(float).mean() - frame.mean()) < 2
  np.testing.assert_array_equal(transforms.transform_frame(frame, transforms.VARIANTS["stride2"],
                                                           rng), frame)
  np.testing.assert_array_equal(transforms.transform_frame(frame, transforms.VARIANTS["mirror"], rng),
                                frame[:, ::-1])


def test_frames_copy_keeps_names_and_applies_the_variant(tmp_path):
  src = tmp_path / "frames"
  src.mkdir()
  rng = np.random.default_rng(0)
  frames = {i: rng.integers(40, 200, (24, 32, 3), dtype=np.uint8) for i in (9, 19, 29)}
  for i, bgr in frames.items():
    cv2.imwrite(str(src / f"{i + 1:04d}.png"), bgr)
  files = {i: str(src / f"{i + 1:04d}.png") for i in frames}
  out = transforms.build_frames_copy(files, "dark", str(tmp_path / "dark"))
  assert sorted(os.listdir(out)) == ["0010.png", "0020.png", "0030.png"]
  for i, bgr in frames.items():
    dark = cv2.imread(os.path.join(out, f"{i + 1:04d}.png"), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(dark, np.rint(bgr * 0.45).astype(np.uint8))
  with pytest.raises(UserError, match="photometric"):
    transforms.build_frames_copy(files, "stride2", str(tmp_path / "s2"))
  assert not os.path.exists(tmp_path / "s2")
