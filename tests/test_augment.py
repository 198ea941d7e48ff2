"""Training augmentations keep boxes on their objects (mottr/augment.py, input.flip_and_jpeg)."""

import jax
import numpy as np

from mottr import augment
from mottr import input as inp


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


