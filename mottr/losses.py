"""DETR/MOTR loss terms: sigmoid focal classification, L1 and GIoU box regression."""
import jax
import jax.numpy as jnp

from mottr import boxes as box_lib


def sigmoid_focal_loss(logits: jax.Array, targets: jax.Array, weight: jax.Array | None = None,
                       alpha: float = 0.25, gamma: float = 2.0) -> jax.Array:
  """Summed focal loss (RetinaNet) of logits [..., C] vs {0,1} targets [..., C]; weight [...] masks rows."""
  p = jax.nn.sigmoid(logits)
  ce = jnp.logaddexp(0.0, logits) - logits * targets  # numerically stable BCE-with-logits
  p_t = p * targets + (1 - p) * (1 - targets)
  loss = ce * (1 - p_t)**gamma
  loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
  loss = loss.sum(-1)
  if weight is not None:
    loss = loss * weight
  return loss.sum()


def box_losses(pred: jax.Array, target: jax.Array, weight: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Summed L1 and (1 - GIoU) losses of cxcywh boxes pred/target [..., 4] over rows with weight [...]."""
  l1 = jnp.abs(pred - target).sum(-1)
  # Keep degenerate (padded) targets finite: they carry weight 0 anyway.
  safe_target = jnp.where(weight[..., None] > 0, target, jnp.array([0.5, 0.5, 0.1, 0.1], target.dtype))
  giou = box_lib.elementwise_giou(box_lib.cxcywh_to_xyxy(pred), box_lib.cxcywh_to_xyxy(safe_target))
  return (l1 * weight).sum(), ((1 - giou) * weight).sum()
