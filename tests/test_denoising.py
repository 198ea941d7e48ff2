"""Denoising queries: noise within its bounds, hidden from the other queries, their own loss terms."""
import jax
import jax.numpy as jnp
import numpy as np

from configs import tiny
from mottr import criterion
from mottr.denoising import noised_queries
from mottr.model.motr import MOTR, build_model, empty_tracks


def _boxes(shape, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(np.concatenate([rng.uniform(0.2, 0.8, shape + (2,)), rng.uniform(0.05, 0.2, shape + (2,))], -1),
                     jnp.float32)


def test_noise_stays_within_its_bounds_and_flips_labels_at_its_rate():
  boxes = _boxes((64, 32))
  labels = jnp.asarray(np.random.default_rng(1).integers(0, 2, (64, 32)), jnp.int32)
  mask = jnp.arange(32)[None].repeat(64, 0) < 20
  dn = noised_queries(jax.random.key(0), boxes, labels, mask, 2, box_noise=0.4, label_noise=0.5)
  shift = np.abs(np.asarray(dn.boxes[..., :2] - boxes[..., :2])) / np.asarray(boxes[..., 2:])
  scale = np.asarray(dn.boxes[..., 2:] / boxes[..., 2:])
  assert shift.max() <= 0.2 + 1e-5 and shift.max() > 0.15  # up to box_noise x half the size
  assert scale.min() >= 0.6 - 1e-5 and scale.max() <= 1.4 + 1e-5 and scale.max() > 1.3
  changed = float((dn.labels != labels).mean())
  assert 0.2 < changed < 0.3  # half are redrawn, half of those land on the other class
  np.testing.assert_array_equal(np.asarray(dn.valid), np.asarray(mask))
  clean = noised_queries(jax.random.key(0), boxes, labels, mask, 2, box_noise=0.0, label_noise=0.0)
  np.testing.assert_allclose(np.asarray(clean.boxes), np.asarray(boxes), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(clean.labels), np.asarray(labels))


def _setup():
  config = tiny.get_config()
  config.model.denoise = True
  model = build_model(config)
  size = config.model.image_size
  images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (2, size, size, 3), dtype=np.uint8))
  tracks = empty_tracks(2, config.model.num_slots, config.model.d_model)
  return config, model, model.init(jax.random.key(0), images, tracks), images, tracks


def test_track_and_detect_queries_do_not_see_denoising_queries():
  config, model, params, images, tracks = _setup()
  memory = model.apply(params, images, method=MOTR.encode)
  tracks = tracks._replace(valid=tracks.valid.at[:, 0].set(True))
  gap = jnp.ones(2)
  dn = noised_queries(jax.random.key(1), _boxes((2, 5)), jnp.zeros((2, 5), jnp.int32), jnp.ones((2, 5), bool), 2,
                      0.4, 0.2)
  plain = model.apply(params, memory, tracks, gap, method=MOTR.decode)
  with_dn = model.apply(params, memory, tracks, gap, dn, method=MOTR.decode)
  n = config.model.num_slots + config.model.num_queries
  assert with_dn.boxes.shape[2] == n + 5
  np.testing.assert_allclose(np.asarray(with_dn.logits[:, :, :n]), np.asarray(plain.logits), atol=1e-5)
  np.testing.assert_allclose(np.asarray(with_dn.boxes[:, :, :n]), np.asarray(plain.boxes), atol=1e-6)
  # The denoising queries themselves depend on their noised boxes.
  moved = model.apply(params, memory, tracks, gap, dn._replace(boxes=dn.boxes.at[..., 0].add(0.1)),
                      method=MOTR.decode)
  assert float(jnp.abs(moved.boxes[-1, :, n:] - with_dn.boxes[-1, :, n:]).max()) > 1e-3


def test_clip_loss_adds_denoising_terms_and_leaves_the_others_alone():
  config, model, params, _, _ = _setup()
  size, m = config.model.image_size, config.data.max_objects
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 255, (2, 2, size, size, 3), dtype=np.uint8)),
           "boxes": _boxes((2, 2, m)), "labels": jnp.asarray(rng.integers(0, 2, (2, 2, m)), jnp.int32),
           "mask": jnp.asarray(rng.uniform(size=(2, 2, m)) < 0.5), "gap": jnp.array([1.0, 2.0])}
  loss, metrics = criterion.clip_loss(model, params, batch, jax.random.key(0), config)
  assert all(float(metrics[k]) > 0 for k in criterion.DENOISE_TERMS) and np.isfinite(float(loss))
  plain_config = tiny.get_config()
  plain_params = {"params": {k: v for k, v in params["params"].items() if k != "denoise_label"}}
  plain_loss, plain = criterion.clip_loss(build_model(plain_config), plain_params, batch, jax.random.key(0),
                                          plain_config)
  for k in criterion.TERMS:
    np.testing.assert_allclose(float(metrics[k]), float(plain[k]), rtol=1e-4)
  dn_part = sum(float(metrics[f"dn_{k}"]) * w for k, w in (("focal", 2.0), ("l1", 5.0), ("giou", 2.0)))
  np.testing.assert_allclose(float(loss), float(plain_loss) + dn_part, rtol=1e-4)
