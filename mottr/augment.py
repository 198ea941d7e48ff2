"""Photometric augmentation inside the jitted train step, with `jax.random` (the host part, flip and
JPEG re-compression, is `mottr.input.flip_and_jpeg`).

One parameter set per clip, drawn from the clip's own key, each with probability 1/2 where not
said: always gamma 0.7-1.4, contrast 0.7-1.3 (about the clip's mean), brightness +-0.15, colour
temperature +-8 % (red vs blue); exposure gain 0.45-1.6 (log-uniform: dim or over-exposed cameras,
clipped); Gaussian blur (probability 1/4, sigma 0.3-1.2 pixels at `BLUR_REFERENCE_WIDTH`, scaled
with the clip's width); Gaussian noise (sigma 1-5 grey levels; drawn by `pixel_noise`, a counter hash
seeded from the clip's key, cheaper than `jax.random.normal` on a CPU). The result is rounded back to uint8.

  images = photometric(batch["image"], key)   # uint8 [B, T, H, W, 3] -> uint8, same shape

The train step keys it with `jax.random.fold_in(step_key, SEED)`, so a batch's augmentation is a
function of the step, as the batch itself is (resume stays bit-exact).
"""
import math
import statistics

import jax
import jax.numpy as jnp
import numpy as np

SEED = 2000  # folded into the step's key (the criterion folds in frame indices t and 1000 + t)
BLUR_REFERENCE_WIDTH = 256  # blur sigmas are in pixels at this clip width
BLUR_SIGMA = (0.3, 1.2)
BLUR_PROB = 0.25


def clip_params(key: jax.Array, width: int) -> dict[str, jax.Array]:
  """The augmentation parameters of one clip (scalars; `channel_gain` [3])."""
  k = jax.random.split(key, 10)
  u = lambda i, lo, hi: jax.random.uniform(k[i], (), jnp.float32, lo, hi)
  coin = lambda i, p: jax.random.uniform(k[i]) < p
  exposure = jnp.where(coin(4, 0.5), jnp.exp(u(5, math.log(0.45), math.log(1.6))), 1.0)
  temperature = u(3, -0.08, 0.08)
  scale = width / BLUR_REFERENCE_WIDTH
  return {
      "gamma": jnp.exp(u(0, math.log(0.7), math.log(1.4))),
      "contrast": u(1, 0.7, 1.3),
      "brightness": u(2, -0.15, 0.15),
      "channel_gain": jnp.stack([1 + temperature, jnp.float32(1), 1 - temperature]) * exposure,
      "blur": coin(6, BLUR_PROB),
      "blur_sigma": u(7, *BLUR_SIGMA) * scale,
      "noise_sigma": jnp.where(coin(8, 0.5), u(9, 1.0, 5.0), 0.0),
  }


def _colour(image: jax.Array, p: dict[str, jax.Array]) -> jax.Array:
  """Gamma, contrast about the clip's mean, brightness, colour temperature and exposure: uint8 clip
  [T, H, W, 3] -> float32 grey levels (not yet rounded or clipped)."""
  lut = (jnp.arange(256, dtype=jnp.float32) / 255.0) ** p["gamma"]  # a 256-entry table, gathered
  g = lut[image]
  mean = g.mean()
  return ((g - mean) * p["contrast"] + mean + p["brightness"]) * (p["channel_gain"] * 255.0)


def blur_radius(width: int) -> int:
  """Half-width of the blur kernel: 4 sigma of the largest sigma at this width (as OpenCV's)."""
  return max(1, math.ceil(4 * BLUR_SIGMA[1] * width / BLUR_REFERENCE_WIDTH))


def blur_kernel(sigma: jax.Array, radius: int) -> jax.Array:
  taps = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  w = jnp.exp(-0.5 * (taps / sigma) ** 2)
  return w / w.sum()


def _blur(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Separable blur of [T, H, W, C] with a [2r+1] kernel, borders reflected (OpenCV's default)."""
  r = kernel.shape[0] // 2
  for axis in (1, 2):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = jnp.pad(x, pad, mode="reflect")
    n = x.shape[axis]
    x = sum(kernel[i] * jax.lax.slice_in_dim(xp, i, i + n, axis=axis) for i in range(2 * r + 1))
  return x


def _normal_table() -> np.ndarray:
  """256 equiprobable standard-normal quantiles, rescaled to unit variance."""
  q = np.array([statistics.NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)])
  return (q / q.std()).astype(np.float32)


NORMAL_TABLE = _normal_table()


def _mix32(h: jax.Array) -> jax.Array:
  """MurmurHash3's 32-bit finaliser."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def pixel_noise(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Standard-normal-like noise (256 quantile levels, tails cut at 2.9 sigma) from a counter hash keyed
  by `key`: each 32-bit hash gives 4 pixels. A tenth of the cost of `jax.random.normal` on a CPU, and
  fine for sensor noise that is rounded to grey levels."""
  n = math.prod(shape)
  words = -(-n // 4)
  seed = jax.random.bits(key, (2,), jnp.uint32)
  h = _mix32(_mix32(jax.lax.iota(jnp.uint32, words) ^ seed[0]) + seed[1])
  octets = jnp.stack([(h >> s) & 255 for s in (0, 8, 16, 24)], -1).reshape(-1)[:n]
  return jnp.asarray(NORMAL_TABLE)[octets.reshape(shape)]


def augment_clip(image: jax.Array, key: jax.Array) -> jax.Array:
  """One uint8 clip [T, H, W, 3] -> its augmented copy (one parameter set for the clip)."""
  width = image.shape[2]
  p = clip_params(key, width)
  x = _colour(image, p)
  kernel = blur_kernel(p["blur_sigma"], blur_radius(width))
  x = jax.lax.cond(p["blur"], lambda x: _blur(x, kernel), lambda x: x, x)
  x = jax.lax.cond(p["noise_sigma"] > 0,
                   lambda x: x + pixel_noise(jax.random.fold_in(key, 1), x.shape) * p["noise_sigma"],
                   lambda x: x, x)
  return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)


def photometric(images: jax.Array, key: jax.Array, per_clip_loop: bool | None = None) -> jax.Array:
  """uint8 clips [B, T, H, W, 3] -> augmented uint8 clips, one parameter set per clip.

  `per_clip_loop` (default: on one CPU device) runs the clips one after another, so that blur and
  noise cost only in the clips that draw them; otherwise they are vmapped (both branches computed,
  one kept: the same values), which suits accelerators and a batch split over devices."""
  keys = jax.random.split(key, images.shape[0])
  if per_clip_loop is None:
    per_clip_loop = jax.default_backend() == "cpu" and jax.device_count() == 1
  if per_clip_loop:
    return jax.lax.map(lambda a: augment_clip(*a), (images, keys))
  return jax.vmap(augment_clip)(images, keys)
