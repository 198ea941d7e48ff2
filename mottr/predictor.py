"""Frame-by-frame inference with track queries carried between frames.

`Predictor.encode` starts the backbone and encoder on a frame (they need no tracks, so the runner
starts the next frame's while the host tracks this one); `Predictor.step` decodes a frame (or its
encoded memory) with the current track queries; the runtime tracker
(`mottr.tracker`) decides which queries go on; `Predictor.carry` turns them into the next
frame's track queries through QIM. With `model.snap_tracks` the frame's encoder memory is decoded
a second time with no tracks, and each live track's box is replaced by the detection of that decode it
overlaps most (or a confident one holding its box), one to one (`snap_tracks`): detect queries localise
better than carried track queries (stage 3 on synthetic val, scripts/bench/diagnose_tracks.py: mean IoU
0.62 at birth, 0.50 carried), and the
snapped box is also the reference the track is carried with. That decode's detect queries also go to
the host (`FrameOutput.track_free`) for the tracker's entry backfill. `Predictor.refine` corrects the
boxes the tracker reads from the full-resolution frame, when the model has a crop refiner
(`mottr.refiner`). Checkpoints load from a training
workdir (latest Orbax checkpoint) or from an exported directory (`config.json` + `params.msgpack`,
as shipped); their config is read by `mottr.config.from_dict`, the tracker section included (`mottr.checkpoint`).
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mottr import boxes as boxes_lib
from mottr import checkpoint
from mottr import compile_cache
from mottr.refiner import BoxRefiner
from mottr.model.motr import MOTR, DecoderOutput, Memory, build_model, carry_tracks, empty_tracks

SNAP_IOU = 0.4    # a track's box and a detection overlapping this much are the same object
SNAP_SCORE = 0.3  # detections that may replace a track's box (max class probability)
# A detection holding this fraction of a track's box competes for it by IoU + score, not IoU alone:
# a track boxing part of an object takes the confident box of the whole (docs/stage19.md).
SNAP_HOLD = 0.95


@dataclasses.dataclass
class FrameOutput:
  """One frame of model output (numpy); the first `num_slots` queries are track slots."""
  scores: np.ndarray      # float32 [N] max class probability
  labels: np.ndarray      # int32 [N] class index (0 bolt, 1 nut)
  boxes: np.ndarray       # float32 [N, 4] normalised cxcywh, not clipped
  num_slots: int
  slot_valid: np.ndarray  # bool [num_slots]
  class_scores: np.ndarray | None = None  # float32 [N, C] probability of each class
  # With `model.snap_tracks`: the detect queries of the track-free decode (num_slots 0), which track
  # queries do not suppress (the tracker's entry backfill may read them).
  track_free: "FrameOutput | None" = None


class Predictor:
  """Stateful per-video inference around a trained MOTR."""

  def __init__(self, config: ml_collections.ConfigDict, params, refiner_params=None):
    self.config = config
    self.refiner = None if refiner_params is None else BoxRefiner(config.refiner, refiner_params)
    self.model = build_model(config)
    self.params = params
    self.input_size = int(config.model.image_size)
    self.num_slots = int(config.model.num_slots)
    self._encode = jax.jit(lambda params, image: self.model.apply(params, image[None], method=MOTR.encode))
    self._step = jax.jit(self._step_outputs)
    self._carry = jax.jit(functools.partial(carry_tracks, self.model))
    self.reset()

  def _forward(self, params, memory, tracks, gap) -> tuple[DecoderOutput, DecoderOutput | None]:
    """The frame's decoder output, and with `model.snap_tracks` the track-free decode it was snapped to."""
    out = self.model.apply(params, memory, tracks, gap, method=MOTR.decode)
    if not self.config.model.snap_tracks:
      return out, None
    alone = self.model.apply(params, memory, empty_tracks(*tracks.embed.shape), gap, method=MOTR.decode)
    return snap_tracks(out, alone, self.num_slots, tracks.valid), alone

  def _step_outputs(self, params, memory, tracks, gap):
    """The decoder output (kept on the device for `carry`) and what the host reads of it: class
    probabilities and boxes of the last layer, and which track slots were live."""
    out, alone = self._forward(params, memory, tracks, gap)
    return out, host_outputs(out, tracks, alone)

  def reset(self, frame_gap: float = 1.0) -> None:
    """Starts a video whose frames are `frame_gap` x 1/30 s apart (30 / fps x frame step)."""
    self._tracks = empty_tracks(1, self.num_slots, self.config.model.d_model)
    self._gap = jnp.full((1,), frame_gap, jnp.float32)
    self._out: DecoderOutput | None = None

  def encode(self, frame_rgb: np.ndarray) -> Memory:
    """Starts the backbone and encoder on one frame (uint8 RGB, already input_size x input_size)
    and returns its memory at once: JAX runs it in the background, so the host can track and draw
    the previous frame meanwhile (`mottr.runner.ModelTracking`), and `step` takes it later."""
    return self._encode(self.params, jnp.asarray(frame_rgb))

  def step(self, frame: np.ndarray | Memory) -> FrameOutput:
    """Runs one frame (uint8 RGB, already input_size x input_size), or its `encode`d memory, with
    the current track queries."""
    memory = frame if isinstance(frame, Memory) else self.encode(frame)
    self._out, host = self._step(self.params, memory, self._tracks, self._gap)
    probs, boxes, valid, *free = jax.device_get(host)  # one transfer
    return frame_output(probs, boxes, valid, self.num_slots, *free)

  def refine(self, frame_bgr: np.ndarray, out: FrameOutput) -> FrameOutput:
    """`out` of `frame_bgr` (the full-resolution frame) with its boxes refined by the model's crop
    refiner (`mottr.refiner`), or as it is when the model has none. The track queries go on from
    the model's own boxes."""
    return out if self.refiner is None else self.refiner.refine_output(frame_bgr, out)

  def carry(self, next_slots: np.ndarray) -> None:
    """Next frame's track slots: slot s continues this frame's query `next_slots[s]` (-1 = empty)."""
    self._tracks = self._carry(self.params, self._out, self._tracks, self._gap,
                               jnp.asarray(next_slots, jnp.int32)[None])


def host_outputs(out: DecoderOutput, tracks, alone: DecoderOutput | None = None) -> tuple[jax.Array, ...]:
  """What the host reads of a frame (inside the jitted step): the last layer's class probabilities
  and boxes of the first clip, which of its track slots were live, and (given the track-free
  decode `alone`) that decode's detect queries' probabilities and boxes."""
  host = (jax.nn.sigmoid(out.logits[-1, 0]), out.boxes[-1, 0], tracks.valid[0])
  if alone is None:
    return host
  num_slots = tracks.valid.shape[1]
  return host + (jax.nn.sigmoid(alone.logits[-1, 0, num_slots:]), alone.boxes[-1, 0, num_slots:])


def frame_output(probs: np.ndarray, boxes: np.ndarray, valid: np.ndarray, num_slots: int,
                 free_probs: np.ndarray | None = None, free_boxes: np.ndarray | None = None) -> FrameOutput:
  """A FrameOutput from the host copies of `host_outputs`."""
  free = None if free_probs is None else frame_output(free_probs, free_boxes, np.zeros(0, bool), 0)
  return FrameOutput(scores=probs.max(-1), labels=probs.argmax(-1).astype(np.int32), boxes=boxes,
                     num_slots=num_slots, slot_valid=valid, class_scores=probs, track_free=free)


def snap_tracks(out: DecoderOutput, detections: DecoderOutput, num_slots: int,
                valid: jax.Array | None = None) -> DecoderOutput:
  """`out` whose live track slots' final boxes are replaced by detect queries of `detections`, one
  to one: greedily by IoU, each live slot takes the confident detection (score >= SNAP_SCORE) it
  overlaps most (IoU >= SNAP_IOU) that no slot overlapping more has taken. So two tracks never
  share one detection's box, as they did when each took its nearest: a track on the upper of two
  objects falling close together then jumps onto the lower one's box, and two slots on one object
  carry the same box to the bottom and count it twice. A detection that holds the track's box
  (SNAP_HOLD of it) ranks by IoU + score: a track on half a bolt takes the bolt's confident box
  rather than a half box that overlaps it more. `valid` [B, S]: the live slots (None: all)."""
  track = boxes_lib.cxcywh_to_xyxy(out.boxes[-1, :, :num_slots])  # [B, S, 4]
  det = detections.boxes[-1, :, num_slots:]  # [B, Q, 4]
  score = jax.nn.sigmoid(detections.logits[-1, :, num_slots:]).max(-1)  # [B, Q]
  iou, union = boxes_lib.pairwise_iou(track, boxes_lib.cxcywh_to_xyxy(det))
  area = (track[..., 2] - track[..., 0]) * (track[..., 3] - track[..., 1])
  holds = iou * union >= SNAP_HOLD * area[..., None]  # the detection covers the track's box
  rank = iou + jnp.where(holds, score[:, None, :], 0.0)
  rank = jnp.where((score[:, None, :] >= SNAP_SCORE) & (iou >= SNAP_IOU), rank, 0.0)
  if valid is not None:
    rank = jnp.where(valid[:, :, None], rank, 0.0)
  taken = jax.vmap(_greedy_one_to_one)(rank)  # [B, S], -1: keeps its own box
  nearest = jnp.take_along_axis(det, jnp.maximum(taken, 0)[..., None], axis=1)
  snapped = jnp.where((taken >= 0)[..., None], nearest, out.boxes[-1, :, :num_slots])
  return out._replace(boxes=out.boxes.at[-1, :, :num_slots].set(snapped))


def _greedy_one_to_one(rank: jax.Array) -> jax.Array:
  """For rank [S, Q] (0: not a pair): the column each row takes (-1: none), pairs picked by falling
  rank while >= SNAP_IOU."""
  rows, cols = rank.shape

  def pick(_, state):
    rank, taken = state
    r, c = jnp.unravel_index(jnp.argmax(rank), (rows, cols))
    ok = rank[r, c] >= SNAP_IOU
    taken = jnp.where(ok, taken.at[r].set(c), taken)
    rank = jnp.where(ok, rank.at[r, :].set(-1.0).at[:, c].set(-1.0), rank)
    return rank, taken

  return jax.lax.fori_loop(0, min(rows, cols), pick, (rank, jnp.full((rows,), -1, jnp.int32)))[1]


def load_predictor(checkpoint_dir: str | None = None, overrides: dict | None = None) -> Predictor:
  """A Predictor of an exported dir or a training workdir (`checkpoint.load`); None = the shipped
  model. Turns on mottr's persistent compilation cache (`mottr.compile_cache`) for every program,
  so a second process with the same model skips XLA compilation (issue 16: the start-up time)."""
  compile_cache.enable(min_compile_secs=0.0)
  config, params = checkpoint.load(checkpoint_dir, overrides)
  return Predictor(config, params, checkpoint.load_refiner(checkpoint_dir, config))
