"""Transformed copies keep their ground truth aligned; training augmentations keep boxes on
their objects."""
import os

import cv2
import jax
import numpy as np
import pytest

from data_prep import challenge
from data_prep import synth
from mottr import augment, counting
from mottr import input as inp
from mottr import transforms
from mottr.errors import UserError

SPLIT = "val"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("clean"))
  synth.generate_split(path, SPLIT, 120, 3, progress=False)
  return path


def frames_of(root_dir):
  cap = cv2.VideoCapture(challenge.video_path(root_dir, SPLIT))
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
  gt = challenge.validate_root(root, SPLIT)
  out = str(tmp_path / name)
  copy = transforms.build_copy(root, SPLIT, name, out)
  assert challenge.validate_root(out, SPLIT) == copy  # ids 1..M, file names, mp4 frames == M
  kept = list(transforms.kept_frames(120, stride))
  assert kept[-1] == 119
  assert challenge.count_video_frames(challenge.video_path(out, SPLIT)) == len(kept)
  assert [im["id"] for im in copy["images"]] == list(range(1, len(kept) + 1))
  assert transforms.video_fps(challenge.video_path(out, SPLIT)) == pytest.approx(30 / stride)
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
  boxes = challenge.annotations_by_image(gt)
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
  gt = challenge.validate_root(root, SPLIT)
  clean = frames_of(root)[:60]
  for name in ("dark", "bright", "noise_jpeg"):
    out = str(tmp_path / name)
    copy = transforms.build_copy(root, SPLIT, name, out, max_frames=60)
    assert challenge.validate_root(out, SPLIT) == copy
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


def test_max_frames_cuts_before_striding(root, tmp_path):
  copy = transforms.build_copy(root, SPLIT, "stride3", str(tmp_path), max_frames=61)
  assert len(copy["images"]) == 21  # frames 0, 3, ..., 60
  assert max(a["image_id"] for a in copy["annotations"]) <= 21
  gt = challenge.validate_root(root, SPLIT)
  n = sum(a["image_id"] <= 61 and (a["image_id"] - 1) % 3 == 0 for a in gt["annotations"])
  assert len(copy["annotations"]) == n


def test_copies_are_reused_only_when_built_the_same_way(root, tmp_path):
  out = str(tmp_path)
  path = challenge.annotation_path(out, SPLIT)
  first = transforms.build_copy(root, SPLIT, "noise_jpeg", out, max_frames=10)
  stamp = os.stat(path).st_mtime_ns
  assert transforms.build_copy(root, SPLIT, "noise_jpeg", out, max_frames=10) == first
  assert os.stat(path).st_mtime_ns == stamp
  other = transforms.build_copy(root, SPLIT, "noise_jpeg", out, max_frames=10, seed=1)
  assert other["info"]["transform"]["seed"] == 1 and os.stat(path).st_mtime_ns != stamp
  assert challenge.count_video_frames(challenge.video_path(out, SPLIT)) == 10


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


def _squares_clip(size=64, frames=3):
  """Frames of dark texture with two bright squares at their (normalised cxcywh) boxes."""
  rng = np.random.default_rng(0)
  boxes = np.array([[0.25, 0.3, 0.2, 0.2], [0.7, 0.6, 0.15, 0.25]], np.float32)
  image = rng.integers(20, 60, (frames, size, size, 3)).astype(np.uint8)
  for t in range(frames):
    for cx, cy, w, h in boxes + np.float32([0, 0.05 * t, 0, 0]):
      x0, y0 = int((cx - w / 2) * size), int((cy - h / 2) * size)
      image[t, y0:y0 + int(h * size), x0:x0 + int(w * size)] = 230
  clip_boxes = np.stack([boxes + np.float32([0, 0.05 * t, 0, 0]) for t in range(frames)])
  return {"image": image, "boxes": clip_boxes, "labels": np.zeros((frames, 2), np.int32),
          "mask": np.ones((frames, 2), bool), "touches_edge": np.zeros((frames, 2), bool)}


def _photometric(images, seed=0, **kw):
  return np.asarray(jax.jit(augment.photometric, static_argnames="per_clip_loop")(
      images, jax.random.key(seed), **kw))


def test_augmentations_keep_boxes_on_their_objects():
  """Flip (host) mirrors the boxes with the image; JPEG (host) and the photometric changes (train
  step) leave boxes where they were, and the objects stay brighter than their surroundings inside
  their boxes."""
  clip = _squares_clip()
  size = clip["image"].shape[2]
  outs = [inp.flip_and_jpeg(clip, np.random.default_rng(seed)) for seed in range(24)]
  images = _photometric(np.stack([o["image"] for o in outs]))
  flipped = 0
  for seed, (out, image) in enumerate(zip(outs, images)):
    for key in ("labels", "mask", "touches_edge"):
      np.testing.assert_array_equal(out[key], clip[key])
    np.testing.assert_array_equal(out["boxes"][..., 1:], clip["boxes"][..., 1:])
    if not np.array_equal(out["boxes"], clip["boxes"]):
      np.testing.assert_allclose(out["boxes"][..., 0], 1 - clip["boxes"][..., 0], atol=1e-6)
      flipped += 1
    grey = image.astype(np.float64).mean(axis=-1)
    for t in range(grey.shape[0]):
      for cx, cy, w, h in out["boxes"][t]:
        x0, x1 = int((cx - w / 2) * size) + 1, int((cx + w / 2) * size) - 1
        y0, y1 = int((cy - h / 2) * size) + 1, int((cy + h / 2) * size) - 1
        inside = grey[t, y0:y1, x0:x1].mean()
        assert inside > np.median(grey[t]) + 40, (seed, t)
  assert 4 < flipped < 20


def test_augmentation_blur_is_one_for_the_whole_clip():
  """Identical frames stay identical up to per-pixel noise: the blur (and every other change) is
  drawn once per clip. Some clips are blurred."""
  edge = np.zeros((16, 4, 64, augment.BLUR_REFERENCE_WIDTH, 3), np.uint8)
  edge[..., augment.BLUR_REFERENCE_WIDTH // 2:, :] = 200
  widths = []
  for clip, image in enumerate(_photometric(edge).astype(np.float64)):
    profiles = image.mean(axis=(1, 3))  # [T, W]: column means, noise averaged out
    assert np.abs(profiles - profiles[0]).max() < 3.0, clip
    step = np.abs(np.diff(profiles[0]))
    widths.append(step.sum() / step.max())  # ~1 for a sharp edge, more when blurred
  assert min(widths) < 1.3 and max(widths) > 1.8


def test_photometric_augmentation_is_a_function_of_the_key_with_one_parameter_set_per_clip():
  rng = np.random.default_rng(0)
  frame = rng.integers(60, 200, (32, 32, 3), dtype=np.uint8)
  images = np.broadcast_to(frame, (8, 4, 32, 32, 3)).copy()
  a, again, other = _photometric(images, 1), _photometric(images, 1), _photometric(images, 2)
  np.testing.assert_array_equal(a, again)
  assert not np.array_equal(a, other)
  means = a.astype(float).mean(axis=(2, 3))  # [B, T, 3]
  assert np.abs(means - means[:, :1]).max() < 1.5  # one colour shift for all frames of a clip
  assert np.ptp(means[:, 0], axis=0).max() > 10  # another for each clip
  assert a.dtype == np.uint8 and a.shape == images.shape
  # Clips one after another (one CPU device) or vmapped (accelerators, several devices): the same.
  np.testing.assert_array_equal(_photometric(images, 1, per_clip_loop=False), a)
  noise = augment.pixel_noise(jax.random.key(0), (4, 64, 64, 3))
  assert abs(float(noise.mean())) < 0.02 and abs(float(noise.std()) - 1) < 0.02


def test_photometric_augmentation_only_where_enabled():
  from configs import tiny
  from mottr import train
  config = tiny.get_config()
  images = np.random.default_rng(0).integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)
  batch = {"image": images, "mask": np.zeros((2, 3, 4), bool)}
  rng = train.step_rng(config, 5)
  out = train.augment_batch(config, batch, rng)
  assert out["mask"] is batch["mask"] and not np.array_equal(np.asarray(out["image"]), images)
  want = augment.photometric(images, jax.random.fold_in(rng, augment.SEED))
  np.testing.assert_array_equal(np.asarray(out["image"]), np.asarray(want))  # keyed by the step
  config.data.augment = False
  assert train.augment_batch(config, batch, rng) is batch


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
