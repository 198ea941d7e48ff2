"""Denoising queries (DN-DETR): noised ground truth the decoder learns to put back.

Each training frame adds one denoising query per ground-truth box: its reference is the box with
its centre moved by up to `box_noise` x half its size and its width and height scaled by up to
1 +- `box_noise`; its content embeds the box's class, flipped to a random class with probability
`label_noise`. Its targets are the clean box and class, so no matching is needed, which gives the
box and class heads a stable signal from the first step while Hungarian matching is still noisy.
"""
import jax
import jax.numpy as jnp

from mottr.model.motr import DenoiseQueries

MIN_SIZE = 1e-3  # smallest noised width / height (normalised)


def noised_queries(rng: jax.Array, gt_boxes: jax.Array, gt_labels: jax.Array, gt_mask: jax.Array,
                   num_classes: int, box_noise: float, label_noise: float) -> DenoiseQueries:
  """Denoising queries for a batch of frames: gt_boxes [B, M, 4] cxcywh, gt_labels / gt_mask [B, M]."""
  box_rng, flip_rng, class_rng = jax.random.split(rng, 3)
  u = jax.random.uniform(box_rng, gt_boxes.shape, minval=-1.0, maxval=1.0)
  size = gt_boxes[..., 2:]
  centre = gt_boxes[..., :2] + u[..., :2] * box_noise * size / 2
  size = jnp.maximum(size * (1 + u[..., 2:] * box_noise), MIN_SIZE)
  flip = jax.random.uniform(flip_rng, gt_labels.shape) < label_noise
  labels = jnp.where(flip, jax.random.randint(class_rng, gt_labels.shape, 0, num_classes), gt_labels)
  return DenoiseQueries(labels.astype(jnp.int32), jnp.concatenate([centre, size], -1), gt_mask)
