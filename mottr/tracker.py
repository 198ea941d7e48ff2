"""The runtime track set of MOTR inference: births, hits, misses and deaths of track queries.

Model-agnostic and numpy-only. Each frame the predictor returns its track slots (queries carried
from the previous frame) followed by its detect queries; `Tracker.update` decides which tracks
live on and which detections are born, and returns the slot layout of the next frame for
`Predictor.carry`. Boxes are stored as COCO `xywh` pixels clipped to the frame, the same form as
the challenge's annotations, so tracks and ground truth go through the same counting and writers.
"""
import collections
import dataclasses
import math
from typing import Protocol

import numpy as np

from data_prep import challenge
from mottr import boxes as boxes_lib


class FrameOutput(Protocol):
  """What the tracker reads of one frame of model output (see `mottr.predictor.FrameOutput`)."""
  scores: np.ndarray  # float32 [N]
  labels: np.ndarray  # int32 [N], class index = category_id - 1
  boxes: np.ndarray  # float32 [N, 4], normalised cxcywh
  num_slots: int
  slot_valid: np.ndarray  # bool [num_slots]


@dataclasses.dataclass
class Track:
  """One object's life: its hit frames (0-based indices) with box, score and class index."""
  track_id: int
  frames: list[int] = dataclasses.field(default_factory=list)
  boxes: list[np.ndarray] = dataclasses.field(default_factory=list)  # xywh pixels, float [4]
  scores: list[float] = dataclasses.field(default_factory=list)
  labels: list[int] = dataclasses.field(default_factory=list)  # class index = category_id - 1

  def add(self, frame: int, box: np.ndarray, score: float, label: int) -> None:
    self.frames.append(int(frame))
    self.boxes.append(np.asarray(box, np.float64))
    self.scores.append(float(score))
    self.labels.append(int(label))

  @property
  def category_id(self) -> int:
    """Majority vote of the per-frame classes (ties go to the larger summed score)."""
    votes = collections.Counter(self.labels)
    score_sum = collections.defaultdict(float)
    for label, score in zip(self.labels, self.scores):
      score_sum[label] += score
    return max(votes, key=lambda label: (votes[label], score_sum[label])) + 1


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of xywh boxes a [N, 4] and b [M, 4] -> [N, M]."""
  a = np.asarray(a, np.float64).reshape(-1, 4)
  b = np.asarray(b, np.float64).reshape(-1, 4)
  to_xyxy = lambda x: np.concatenate([x[:, :2], x[:, :2] + x[:, 2:]], axis=1)
  return boxes_lib.pairwise_iou(to_xyxy(a), to_xyxy(b))[0]


def clip_xywh(boxes_xywh: np.ndarray, width: float, height: float) -> np.ndarray:
  """Clips xywh boxes [..., 4] to the frame; boxes entirely outside get zero width or height."""
  x0 = np.clip(boxes_xywh[..., 0], 0, width)
  y0 = np.clip(boxes_xywh[..., 1], 0, height)
  x1 = np.clip(boxes_xywh[..., 0] + boxes_xywh[..., 2], 0, width)
  y1 = np.clip(boxes_xywh[..., 1] + boxes_xywh[..., 3], 0, height)
  return np.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)


@dataclasses.dataclass
class _Live:
  track: Track
  slot: int
  misses: int = 0


class Tracker:
  """Turns per-frame query outputs into tracks with stable ids (MOTR's runtime track set).

  A live track in slot s is hit when its query scores >= keep_threshold and missed otherwise;
  after more than `miss_tolerance` consecutive misses (frames at 30 FPS, scaled to `fps`) it
  dies and frees its slot. Its query is carried while it is missing. A detect query scoring
  >= birth_threshold starts a new track (ids 1, 2, ... in order of birth) in a free slot unless
  its box overlaps this frame's box of a live track (hit or missed) or of a stronger birth of the
  same frame by IoU > duplicate_iou.
  """

  def __init__(self, num_slots: int, *, birth_threshold: float = 0.7, keep_threshold: float = 0.6,
               miss_tolerance: int = 5, duplicate_iou: float = 0.7, fps: float = challenge.FPS,
               frame_size: tuple[int, int] = (challenge.WIDTH, challenge.HEIGHT)):
    self.num_slots = num_slots
    self.birth_threshold = birth_threshold
    self.keep_threshold = keep_threshold
    self.max_misses = max(1, math.ceil(miss_tolerance * fps / challenge.FPS - 1e-9))
    self.duplicate_iou = duplicate_iou
    self.width, self.height = frame_size
    self.dropped_births = 0  # births lost because every slot was taken
    self.suppressed_births = 0  # births dropped as duplicates
    self._live: list[_Live] = []
    self._finished: list[Track] = []
    self._next_id = 1

  @property
  def live(self) -> list[Track]:
    """Tracks alive after the last update (hit or missing), in id order."""
    return [l.track for l in self._live]

  def update(self, out: FrameOutput, frame_index: int) -> np.ndarray:
    """Consumes one frame's output; returns next_slots (int32 [num_slots]) for `Predictor.carry`."""
    if out.num_slots != self.num_slots:
      raise ValueError(f"FrameOutput has {out.num_slots} track slots, tracker has {self.num_slots}")
    boxes = clip_xywh(
        boxes_lib.cxcywh_to_xywh_px(np.asarray(out.boxes, np.float64), self.width, self.height),
        self.width, self.height)
    visible = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)

    slot_boxes = []  # this frame's box of every live track, hit or missed
    survivors = []
    for live in self._live:
      s = live.slot
      if not out.slot_valid[s]:
        raise ValueError(f"track slot {s} holds track {live.track.track_id} but is not valid")
      if visible[s]:
        slot_boxes.append(boxes[s])
      if out.scores[s] >= self.keep_threshold and visible[s]:
        live.track.add(frame_index, boxes[s], out.scores[s], out.labels[s])
        live.misses = 0
      else:
        live.misses += 1
      if live.misses > self.max_misses:
        self._finished.append(live.track)
      else:
        survivors.append(live)
    self._live = survivors

    detect = np.arange(self.num_slots, len(out.scores))
    candidates = detect[(out.scores[detect] >= self.birth_threshold) & visible[detect]]
    candidates = candidates[np.argsort(-out.scores[candidates], kind="stable")]
    accepted = []
    for q in candidates:
      taken = np.array(slot_boxes + [boxes[a] for a in accepted]).reshape(-1, 4)
      if len(taken) and iou_xywh(boxes[q], taken).max() > self.duplicate_iou:
        self.suppressed_births += 1
      else:
        accepted.append(q)

    used = {l.slot for l in self._live}
    free = [s for s in range(self.num_slots) if s not in used]
    next_slots = np.full(self.num_slots, -1, np.int32)
    for live in self._live:
      next_slots[live.slot] = live.slot
    self.dropped_births += max(0, len(accepted) - len(free))
    for q, slot in zip(accepted, free):
      track = Track(self._next_id)
      self._next_id += 1
      track.add(frame_index, boxes[q], out.scores[q], out.labels[q])
      self._live.append(_Live(track, slot))
      next_slots[slot] = q
    self._live.sort(key=lambda l: l.track.track_id)
    return next_slots

  def pop_finished(self) -> list[Track]:
    """Tracks that died since the last call, in id order."""
    finished = sorted(self._finished, key=lambda t: t.track_id)
    self._finished = []
    return finished

  def finish(self) -> list[Track]:
    """Ends every live track (end of video); returns them with any unpopped dead ones, by id."""
    self._finished.extend(l.track for l in self._live)
    self._live = []
    return self.pop_finished()
