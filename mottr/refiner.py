"""The crop refiner at inference: a frame's boxes corrected from the full-resolution frame.

`BoxRefiner.refine_output` takes a frame's `FrameOutput` (the decode's queries and the track-free
decode's) and replaces every box scoring at least `refiner.min_score` by the crop refiner's
(`mottr.model.crop_refiner`), in one batch (a box in both, as a snapped track's, is cut once). The
model's own state is not touched: the track queries go on from the model's boxes, only what the
tracker reads changes (and, with a class-aware refiner's `rescore`, new detections' scores). A
model folder with a `refiner.msgpack` beside its parameters and `refiner.enabled` in its config
refines (`mottr.checkpoint.load_refiner`).
"""
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mottr import boxes as boxes_lib
from mottr.model import crop_refiner
from mottr.schema import UserError

MIN_BATCH = 4  # crops are run in batches of 4, 8, 16, ... (few compilations)


class BoxRefiner:
  """A trained crop refiner and the settings it was trained with."""

  def __init__(self, settings: ml_collections.ConfigDict, params):
    self.size = int(settings.crop_size)
    self.grow = float(settings.grow)
    self.min_score = float(settings.min_score)
    self.class_aware = bool(settings.class_aware)
    self.rescore = float(settings.rescore) if self.class_aware else 0.0
    self.passes, self.flip = int(settings.passes), bool(settings.flip)
    if self.passes < 1:
      raise UserError(f"refiner.passes={self.passes}: pass 1 or more (or refiner.enabled=False)")
    self.params = params
    self._apply = jax.jit(crop_refiner.build_refiner(settings).apply)

  def refine_xyxy(self, frame_bgr: np.ndarray, boxes: np.ndarray, labels: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """xyxy pixel boxes [N, 4] of `frame_bgr` and their classes [N] -> refined xyxy pixel boxes and,
    from a class-aware refiner, the logits [N] that an object of the class is there (else None;
    from the first pass: it scores the detector's box)."""
    n = len(boxes)
    if n == 0:
      return np.zeros((0, 4), np.float32), np.zeros(0, np.float32) if self.class_aware else None
    batch = max(MIN_BATCH, 1 << (n - 1).bit_length())
    classes = np.zeros(batch, np.int32)
    classes[:n] = labels
    if self.flip:  # the crops flipped left-right follow in the same batch
      classes = np.concatenate([classes, classes])
    for step in range(self.passes):
      regions = crop_refiner.crop_regions(boxes, self.grow)
      crops = np.zeros((batch, self.size, self.size, 3), np.uint8)
      for i, region in enumerate(regions):
        crops[i] = crop_refiner.cut(frame_bgr, region, self.size)[..., ::-1]  # BGR -> RGB
      edges = np.zeros((batch, 4), np.float32)
      edges[:n] = crop_refiner.to_crop(boxes, regions)
      if self.flip:
        crops, edges = np.concatenate([crops, crops[:, :, ::-1]]), np.concatenate([edges, crop_refiner.mirror(edges)])
      out, logits = jax.device_get(self._apply(self.params, jnp.asarray(crops), jnp.asarray(edges),
                                               jnp.asarray(classes)))
      if self.flip:
        out = (out[:batch] + crop_refiner.mirror(out[batch:])) / 2
        logits = None if logits is None else (logits[:batch] + logits[batch:]) / 2
      boxes = crop_refiner.from_crop(out[:n], regions)
      if step == 0:
        first_logits = None if logits is None else logits[:n]
    return boxes, first_logits

  def refine(self, frame_bgr: np.ndarray, boxes: np.ndarray, labels: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalised cxcywh boxes [N, 4] of `frame_bgr` and their classes -> refined normalised cxcywh
    boxes, and the logits of `refine_xyxy`."""
    h, w = frame_bgr.shape[:2]
    scale = np.array([w, h, w, h], np.float32)
    xyxy = np.asarray(boxes_lib.cxcywh_to_xyxy(np.asarray(boxes, np.float32))) * scale
    out, logits = self.refine_xyxy(frame_bgr, xyxy, labels)
    return np.asarray(boxes_lib.xyxy_to_cxcywh(out / scale), np.float32), logits

  def refine_output(self, frame_bgr: np.ndarray, out):
    """`out` (a `mottr.predictor.FrameOutput`) with its boxes scoring >= min_score refined, those of
    its track-free decode too; with `rescore`, the scores of its refined detect queries times
    sigmoid(logit) ** rescore. Track queries and the track-free decode (the entry backfill's and
    rescue births' evidence) keep the detector's scores: rescoring them lost objects
    (docs/stage30.md)."""
    parts = [out] + ([out.track_free] if out.track_free is not None else [])
    picks = [np.flatnonzero(p.scores >= self.min_score) for p in parts]
    keys = np.concatenate([np.concatenate([p.boxes[i], p.labels[i, None]], 1) for p, i in zip(parts, picks)])
    unique, index = np.unique(keys.astype(np.float32), axis=0, return_inverse=True)  # a snapped track box is a detection's
    refined, logits = self.refine(frame_bgr, unique[:, :4], unique[:, 4].astype(np.int32))
    refined, index = refined[index.reshape(-1)], index.reshape(-1)
    new, start = [], 0
    for part, pick in zip(parts, picks):
      changes = {"boxes": part.boxes.copy()}
      changes["boxes"][pick] = refined[start:start + len(pick)]
      if self.rescore and logits is not None and part is out:  # the decode's detect queries only
        factor = (1.0 / (1.0 + np.exp(-logits[index[start:start + len(pick)]]))) ** self.rescore
        factor[pick < part.num_slots] = 1.0
        changes["scores"] = part.scores.copy()
        changes["scores"][pick] *= factor
        if part.class_scores is not None:
          changes["class_scores"] = part.class_scores.copy()
          changes["class_scores"][pick] *= factor[:, None]
      start += len(pick)
      new.append(dataclasses.replace(part, **changes))
    return dataclasses.replace(new[0], track_free=new[1] if len(new) > 1 else None)
