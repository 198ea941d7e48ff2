"""MOTR's clip objective: frames in order (one `lax.scan`), track queries carried, collective average loss.

For each frame (clips are evenly spaced, `batch["gap"]` apart in 1/30 s): decode [track queries ;
detect queries], assign targets tracklet-aware
(`matching.tracklet_aware_assignment`), add focal + L1 + GIoU on every decoder layer and on the
encoder proposals, then
pick the queries that go on (tracked objects, newly matched detections, with random track drop and
false-positive insertion) and update them with QIM. The clip's summed
losses are divided once by the number of ground-truth boxes in the batch (collective average loss).
"""
import jax
import jax.numpy as jnp

from mottr import losses
from mottr.matching import tracklet_aware_assignment
from mottr.model.motr import MOTR, Memory, carry_tracks, empty_tracks

TERMS = ("focal", "l1", "giou", "prop_focal", "prop_l1", "prop_giou")


def proposal_targets(gt_boxes: jax.Array, gt_labels: jax.Array, gt_mask: jax.Array, grid: tuple[int, int],
                     num_classes: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Encoder proposal targets: the cell holding an object's centre predicts it.

  Returns one-hot classes [HW, C], boxes [HW, 4] and positive weights [HW] for one frame.
  """
  h, w = grid
  col = jnp.clip(jnp.floor(gt_boxes[:, 0] * w), 0, w - 1).astype(jnp.int32)
  row = jnp.clip(jnp.floor(gt_boxes[:, 1] * h), 0, h - 1).astype(jnp.int32)
  cell = jnp.where(gt_mask, row * w + col, h * w)  # padding scatters out of range and is dropped
  classes = jnp.zeros((h * w, num_classes)).at[cell, gt_labels].set(1.0, mode="drop")
  boxes = jnp.full((h * w, 4), 0.5).at[cell].set(gt_boxes, mode="drop")
  weight = jnp.zeros((h * w,)).at[cell].set(1.0, mode="drop")
  return classes, boxes, weight


def select_next(target: jax.Array, scores: jax.Array, num_slots: int, rng: jax.Array,
                drop_prob: float, fp_prob: float) -> tuple[jax.Array, jax.Array]:
  """Which queries continue as next frame's track slots, and their objects (one clip).

  Args:
    target: int [N] object of each query from the assignment (-1 background).
    scores: [N] max class probability of each query (picks the inserted false positive).
  Returns:
    (next_slots int32 [S]: query index or -1, next_obj int32 [S]: object index or -1).
  """
  n = target.shape[0]
  drop_rng, fp_rng = jax.random.split(rng)
  is_track = jnp.arange(n) < num_slots
  keep = (target >= 0) & ~(is_track & (jax.random.uniform(drop_rng, (n,)) < drop_prob))
  fp_candidates = jnp.where(~is_track & (target < 0), scores, -jnp.inf)
  fp = jnp.argmax(fp_candidates)
  insert = (jax.random.uniform(fp_rng) < fp_prob) & jnp.isfinite(fp_candidates[fp])
  keep = keep.at[fp].set(keep[fp] | insert)
  order = jnp.argsort(~keep, stable=True)[:num_slots]
  kept = keep[order]
  return jnp.where(kept, order, -1).astype(jnp.int32), jnp.where(kept, target[order], -1).astype(jnp.int32)


def _class_loss(logits, target, query_valid, gt_labels, num_classes, focal_kw):
  """Summed focal loss of one decoder layer for one frame of one clip."""
  has = target >= 0
  onehot = jax.nn.one_hot(gt_labels[jnp.maximum(target, 0)], num_classes) * has[:, None]
  return losses.sigmoid_focal_loss(logits, onehot, query_valid.astype(logits.dtype), **focal_kw)


def _box_loss(boxes, target, gt_boxes):
  """Summed L1 / GIoU of one layer's boxes for one frame of one clip."""
  return losses.box_losses(boxes, gt_boxes[jnp.maximum(target, 0)], (target >= 0).astype(boxes.dtype))


def clip_loss(model: MOTR, params, batch: dict, rng: jax.Array, config) -> tuple[jax.Array, dict]:
  """Collective average loss of a batch of clips; returns (loss, per-term metrics)."""
  lc, mc = config.loss, config.model
  images = batch["image"]
  b, t_len, height, width = images.shape[:4]
  stride = 2**len(mc.backbone_widths)
  grid = (height // stride, width // stride)
  memory = model.apply(params, images.reshape(b * t_len, height, width, 3), method=MOTR.encode)
  per_frame = lambda x: x.reshape(b, t_len, *x.shape[1:])
  feats, prop_logits, prop_boxes = map(per_frame, (memory.features, memory.proposal_logits,
                                                   memory.proposal_boxes))
  focal_kw = dict(alpha=lc.focal_alpha, gamma=lc.focal_gamma)
  cost_kw = dict(w_class=lc.cost_class, w_l1=lc.cost_l1, w_giou=lc.cost_giou, **focal_kw)
  gap = batch["gap"].astype(jnp.float32)
  class_loss = jax.vmap(jax.vmap(_class_loss, in_axes=(0, 0, 0, 0, None, None)),
                        in_axes=(0, None, None, None, None, None))
  box_loss = jax.vmap(jax.vmap(_box_loss), in_axes=(0, None, None))  # every layer (+ the refined boxes)

  def frame(carry, xs):
    """One frame of every clip: losses added to `sums`, then the queries that go on carried."""
    tracks, slot_obj, sums = carry
    t, feat, p_logits, p_boxes, fine, gt_boxes, gt_labels, gt_mask = xs
    sums = dict(sums)
    out = model.apply(params, Memory(feat, memory.pos, p_logits, p_boxes, fine), tracks, gap, method=MOTR.decode)
    target = jax.vmap(lambda lg, bx, so, sv, gb, gl, gm: tracklet_aware_assignment(
        lg, bx, so, sv, gb, gl, gm, solver=lc.matcher, **cost_kw))(out.logits[-1], out.boxes[-1], slot_obj, tracks.valid,
                                                gt_boxes, gt_labels, gt_mask)
    query_valid = jnp.concatenate([tracks.valid, jnp.ones((b, mc.num_queries), bool)], axis=1)
    focal = class_loss(out.logits, target, query_valid, gt_labels, mc.num_classes, focal_kw)
    l1, giou = box_loss(out.boxes, target, gt_boxes)
    sums["focal"] += focal.sum()
    sums["l1"] += l1.sum()
    sums["giou"] += giou.sum()
    p_cls, p_box, p_w = jax.vmap(proposal_targets, in_axes=(0, 0, 0, None, None))(
        gt_boxes, gt_labels, gt_mask, grid, mc.num_classes)
    sums["prop_focal"] += losses.sigmoid_focal_loss(p_logits, p_cls, **focal_kw)
    p_l1, p_giou = losses.box_losses(p_boxes, p_box, p_w)
    sums["prop_l1"] += p_l1
    sums["prop_giou"] += p_giou
    # The last frame's carry is computed too (scan's body is one program) and discarded.
    scores = jax.nn.sigmoid(out.logits[-1]).max(-1)
    rngs = jax.random.split(jax.random.fold_in(rng, t), b)
    next_slots, slot_obj = jax.vmap(select_next, in_axes=(0, 0, None, 0, None, None))(
        target, scores, mc.num_slots, rngs, lc.track_drop_prob, lc.fp_insert_prob)
    tracks = carry_tracks(model, params, out, tracks, gap, next_slots)
    return (tracks, slot_obj, sums), None

  time_major = lambda x: jnp.swapaxes(x, 0, 1)
  fine = None if memory.fine is None else time_major(per_frame(memory.fine))
  xs = (jnp.arange(t_len), *map(time_major, (feats, prop_logits, prop_boxes)), fine,
        *map(time_major, (batch["boxes"], batch["labels"], batch["mask"])))
  init = (empty_tracks(b, mc.num_slots, mc.d_model), jnp.full((b, mc.num_slots), -1, jnp.int32),
          {k: jnp.zeros(()) for k in TERMS})
  (_, _, sums), _ = jax.lax.scan(frame, init, xs)
  num_boxes = jnp.maximum(batch["mask"].sum(), 1).astype(jnp.float32)
  metrics = {k: v / num_boxes for k, v in sums.items()}
  weights = {"focal": lc.w_class, "l1": lc.w_l1, "giou": lc.w_giou}
  weights.update({f"prop_{k}": w for k, w in tuple(weights.items())})
  loss = sum(weights[k] * metrics[k] for k in TERMS)
  metrics["loss"] = loss
  return loss, metrics
