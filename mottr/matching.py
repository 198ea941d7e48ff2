"""Hungarian matching of predictions to ground truth, called from jit.

Two solvers (`loss.matcher`), the same optimum:
- "scipy": `linear_sum_assignment` on the host through `jax.pure_callback`, one call for a whole
  vmapped batch. A jitted solver is a chain of ~100 data-dependent `while_loop` iterations per
  problem, which serialises an accelerator, while scipy solves a batch of 32 such problems in ~0.2 ms.
  But a program with a host callback never enters JAX's persistent compilation cache.
- "optax": `optax.assignment.hungarian_algorithm` inside the program, which the persistent cache
  keeps: a relaunched CPU run skips compiling its step (docs/stage27.md).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import optimize

from mottr import boxes as box_lib

SOLVERS = ("scipy", "optax")
_INF = 1e6


def match_cost(logits: jax.Array, pred_boxes: jax.Array, gt_labels: jax.Array, gt_boxes: jax.Array,
               *, w_class: float = 2.0, w_l1: float = 5.0, w_giou: float = 2.0,
               alpha: float = 0.25, gamma: float = 2.0) -> jax.Array:
  """DETR matching cost [N, M] of N predictions (logits [N, C], cxcywh boxes) vs M ground truths."""
  p = jax.nn.sigmoid(logits)
  neg = (1 - alpha) * p**gamma * -jnp.log(1 - p + 1e-8)
  pos = alpha * (1 - p)**gamma * -jnp.log(p + 1e-8)
  c_class = jnp.take(pos - neg, gt_labels, axis=1)
  c_l1 = jnp.abs(pred_boxes[:, None, :] - gt_boxes[None, :, :]).sum(-1)
  c_giou = -box_lib.pairwise_giou(box_lib.cxcywh_to_xyxy(pred_boxes), box_lib.cxcywh_to_xyxy(gt_boxes))
  return w_class * c_class + w_l1 * c_l1 + w_giou * c_giou


def hungarian_match(cost: jax.Array, gt_valid: jax.Array, solver: str = "scipy") -> tuple[jax.Array, jax.Array]:
  """Optimal one-to-one assignment of ground truths (columns) to predictions (rows).

  Args:
    cost: [N, M] with N >= M; padded columns may hold anything.
    gt_valid: bool [M], which columns are real ground truth.
    solver: one of SOLVERS (module doc).
  Returns:
    (pred_index [M] int32: the row matched to each column, matched [M] bool = gt_valid).
    Padded columns cost 0 against every row, so they never change the real columns' optimum.
  """
  n, m = cost.shape
  if n < m:
    raise ValueError(f"need at least as many predictions ({n}) as ground-truth slots ({m})")
  cost = jnp.where(gt_valid[None, :], cost, 0.0)
  cost = jax.lax.stop_gradient(jnp.where(jnp.isfinite(cost), cost, _INF))
  if solver == "scipy":
    pred_index = jax.pure_callback(_host_assignment, jax.ShapeDtypeStruct((m,), jnp.int32), cost,
                                   vmap_method="expand_dims")
  elif solver == "optax":
    rows, cols = optax.assignment.hungarian_algorithm(cost)
    pred_index = jnp.zeros((m,), jnp.int32).at[cols].set(rows.astype(jnp.int32))
  else:
    raise ValueError(f"unknown matcher {solver!r}: use one of {', '.join(SOLVERS)}")
  return pred_index, gt_valid


def _host_assignment(cost: np.ndarray) -> np.ndarray:
  """Row matched to each column of cost [..., N, M] (N >= M), per leading index: int32 [..., M]."""
  cost = np.asarray(cost, np.float64)
  flat = cost.reshape(-1, *cost.shape[-2:])
  out = np.empty((flat.shape[0], cost.shape[-1]), np.int32)
  for k, c in enumerate(flat):
    rows, cols = optimize.linear_sum_assignment(c)
    out[k, cols] = rows
  return out.reshape(*cost.shape[:-2], cost.shape[-1])


def tracklet_aware_assignment(logits: jax.Array, boxes: jax.Array, slot_obj: jax.Array, slot_valid: jax.Array,
                              gt_boxes: jax.Array, gt_labels: jax.Array, gt_mask: jax.Array,
                              solver: str = "scipy", **cost_kwargs) -> jax.Array:
  """MOTR's tracklet-aware label assignment for one frame of one clip.

  The first S queries are track slots: a live slot keeps its object (`slot_obj`, an index into the
  clip-aligned ground truth) and is trained on it while the object is visible, as background
  otherwise. Only the detect queries that follow are Hungarian-matched, and only to visible objects
  that no live slot tracks.

  Args:
    logits, boxes: last decoder layer's [N, C] and [N, 4] for N = S + Q queries.
    slot_obj: int [S] object index of each slot (-1 = none, e.g. an inserted false positive).
    slot_valid: bool [S].
    gt_boxes, gt_labels, gt_mask: [M, 4], [M], [M] ground truth of the frame; index m is the same
      object in every frame of the clip.
    solver: the Hungarian solver, one of SOLVERS.
  Returns:
    int32 [N]: the object each query is trained on, -1 for background.
  """
  s, m = slot_obj.shape[0], gt_mask.shape[0]
  live = slot_valid & (slot_obj >= 0)
  obj = jnp.maximum(slot_obj, 0)
  tracked = jnp.zeros((m,), bool).at[obj].max(live)
  track_target = jnp.where(live & gt_mask[obj], slot_obj, -1)
  eligible = gt_mask & ~tracked
  cost = match_cost(logits[s:], boxes[s:], gt_labels, gt_boxes, **cost_kwargs)
  det_index, _ = hungarian_match(cost, eligible, solver)
  det_target = jnp.full((logits.shape[0] - s,), -1, jnp.int32)
  det_target = det_target.at[det_index].set(jnp.where(eligible, jnp.arange(m, dtype=jnp.int32), -1))
  return jnp.concatenate([track_target.astype(jnp.int32), det_target])
