"""The runtime track set of MOTR inference: births, hits, misses and deaths of track queries.

Model-agnostic and numpy-only. Each frame the predictor returns its track slots (queries carried
from the previous frame) followed by its detect queries; `Tracker.update` decides which tracks
live on and which detections are born, and returns the slot layout of the next frame for
`Predictor.carry`. Boxes are stored as COCO `xywh` pixels clipped to the frame, the same form as
the challenge's annotations, so tracks and ground truth go through the same counting and writers.

Two rules use a track's whole life rather than one frame:
- class: a track's category is the argmax of its class evidence, the mean per-class probability
  of its hits (`FrameOutput.class_scores`) times `class_weights`, not a vote of per-frame argmax
  labels. On the real dense clip the carried track queries of nuts drift towards "bolt" (mean
  nut probability 0.35-0.45 of the two), while bolts stay below 0.06, hence a nut weight > 1;
- motion plausibility (`min_descent` > 0): objects fall, scene structure does not. A new track is
  tentative until its box centre has moved down `min_descent` px (of a 640 px high frame); one
  that has not within `confirm_window` frames (at 30 FPS) of its birth, or (`fall_slack` > 0)
  within `fall_slack` x the time that a fall from rest takes to cover `min_descent` px at the
  height where it was born (objects enter falling, so one first seen low in the frame is fast,
  while a query hallucinating a fall sits still first), is rejected and never reported. A rejected track keeps its slot (its query is carried, unreported) so the structure
  it sits on does not re-spawn a track every frame, until it dies, until a birth finds no other
  free slot, or until its box itself moves down `min_descent` px within `confirm_window` frames
  (its query slid onto a falling object, or hallucinates a fall: it is dropped, so that the
  object, if any, is born as a track of its own and judged afresh). A confirmed track that stops
  falling (less than `min_descent` px over `stall_window` frames) is retired, reported up to
  where it stopped.

Entry backfill (`backfill_window` > 0): an object entering through the top edge shows a sliver first,
and the model scores it above keep_threshold some frames before it reaches birth_threshold (on the
dense real clip: a median of 6 frames between an object's first annotated box and its first tracked
one). When a track is reported (confirmed, or born with the motion rule off), it is extended back
through the detect queries of the `backfill_window` frames before its birth (with
`backfill_track_free`, also those of the track-free decode, which live track queries do not hold
down): frame by frame, the detection that scores >= `backfill_threshold` (lower than a birth needs:
like ByteTrack's second, low-score association, the track's own box vouches for it), overlaps its
earliest box by IoU >= BACKFILL_IOU, has its bottom edge `backfill_fall` px per frame higher (objects
fall into view; structure at the top edge stays put) and is no other track's box of that frame; the
walk passes over BACKFILL_GAPS frames in a row without one, and stops at the next. It adds boxes to the
start of tracks only: exits, counts and the live state do not change. Under SPARSE_FPS it is off.

Rescue births (`rescue_hits` > 0): a live track query holds down the detect queries decoded beside
it, so an object entering right above a tracked one can score 0.1-0.3 for its whole life and never
be born (the dense real clip's same-column pair). The track-free decode (`FrameOutput.track_free`)
has no track queries and scores it 0.7-0.9, though not in every frame. Its confident detections that
overlap no live track's box by IoU > `rescue_iou`, below the top edge (RESCUE_TOP_MARGIN), are chained frame to frame (IoU >= BACKFILL_IOU
with the chain's last box moved on at its vertical speed); a chain with `rescue_hits` sightings
within `rescue_window` frames starts a track on the tracked decode's detect query boxing it (IoU >=
RESCUE_QUERY_IOU), whose embedding is carried like any birth's. Such a track is tentative like any
other. Under SPARSE_FPS it is off.

Support (`support_window` > 0): a carried track query can hallucinate an object and keep it falling
on empty background at a confident score (the dense real clip's one false track over 15 frames: a
nut box shrinking from 55 to 18 px over 22 frames, beside a bolt). The track-free decode, which no
track query steers, has no detection there at all, while on a real object it has one, if only a
partial or low-scoring one. A track hit on boxes that no track-free detection scoring >=
`support_score` overlaps by SUPPORT_COVER of the smaller box, for `support_window` frames in a row,
ends, reported up to where that began. A track that ends too soon for that window shows the same
sign over its life: a confirmed track that ends with under `support_share` of its hits vouched for
is not reported at all. Under SPARSE_FPS both are off.

Box smoothing (`smooth_window` > 0): a reported track's boxes are smoothed when it ends
(`mottr.smoothing`: a local straight-line fit in time, so a box falling at steady speed stays put;
with `smooth_gravity` the y corners are fitted to a fall under GRAVITY, which leaves a free fall put).
The model's boxes jitter from frame to frame around the object; averaging over a few frames
tightens them (the dense real clip: MOTA 0.826 -> 0.862, track-box mAP50 0.867 -> 0.904).
Nut size (`nut_max_size` > 0): a nut is small and rigid (fully visible real nuts are 48 px at most),
so a reported nut track's boxes are then shrunk about their centre to at most `nut_max_size` px a
side, on each axis where the object is in view; the model's nut boxes run larger (the dense clip's
burned-in tags above the objects, and the padded convention the model learnt on synthetic boxes).
One width (`width_band` > 0): objects tumble about a horizontal axis, so a box's width stays put
along a track; a reported track's boxes clear of the edges, within `width_band` (log) of the track's
median width, take that width (`smoothing.steady_width`).

At sparse rates (every 10th frame) the model's motion prior carries a track born on structure down
like a falling object, and the structure fires again a step later. With `spot_window` > 0 a birth on
the box (IoU > SPOT_IOU) of a birth of the last `spot_window` frames (at 30 FPS) is dropped, and
the spot stays blocked while it keeps firing.
"""
import dataclasses
import math
from typing import Any, Protocol

import numpy as np

from mottr import boxes as boxes_lib
from mottr import counting
from mottr import schema
from mottr import smoothing
from mottr.boxes import clip_xywh, covered_xywh, iou_xywh
from mottr.schema import Track


class FrameOutput(Protocol):
  """What the tracker reads of one frame of model output (see `mottr.predictor.FrameOutput`)."""
  scores: np.ndarray  # float32 [N]
  labels: np.ndarray  # int32 [N], class index = category_id - 1
  # Optional float32 [N, C] per-class probabilities (class evidence); None: only labels are known.
  class_scores: np.ndarray | None
  boxes: np.ndarray  # float32 [N, 4], normalised cxcywh
  num_slots: int
  slot_valid: np.ndarray  # bool [num_slots]


# Below this many processed frames per second of video (e.g. every 10th frame of a 30 FPS video),
# births use TrackerSettings.sparse_birth_threshold (an object is seen in a few frames only) and
# the birth-spot window sparse_spot_window applies.
SPARSE_FPS = 10.0


@dataclasses.dataclass(frozen=True)
class TrackerSettings:
  """The tracker and counting thresholds: the `tracker` section of a model's config (exported in
  its config.json, so the tuned values travel with the weights; `--config.tracker.x=v` changes
  one). These defaults are the one set: mottr.config's tracker section and `Tracker` use them."""
  # Score for a detect query to start a track (tuned with the motion rule on the dense real clip
  # and synthetic val: docs/tracker_dense.md).
  birth_threshold: float = 0.7
  # birth_threshold under SPARSE_FPS (tuned on half of the real val frames).
  sparse_birth_threshold: float = 0.5
  keep_threshold: float = 0.4  # score for a track query to count as a hit (scripts/bench/tune_tracker.py)
  miss_tolerance: int = 5  # consecutive misses (frames at 30 FPS) a track survives
  duplicate_iou: float = 0.7  # a birth overlapping a live track by more IoU is dropped
  # Two tracks whose boxes have overlapped by IoU > duplicate_iou for this many frames (at 30 FPS)
  # follow one object: the younger one ends where the overlap began; 0: off. (3: the shipped
  # model's one double count on synthetic val and stage 15's on the dense clip go, nothing else
  # changes; 1-3 equal, 5 and 8 miss the synthetic one; docs/stage15.md.)
  duplicate_window: float = 3.0
  # A track whose box has held the boxes of two other confirmed tracks (each at least UNION_COVER
  # inside it, the two overlapping by IoU < UNION_APART_IOU) in every frame for this many frames
  # (at 30 FPS) spans two objects: it ends, reported up to where that began; 0: off. (A track born
  # on two objects entering side by side, which each got a track of their own, would otherwise
  # count one of them again where it leaves: docs/stage17.md.)
  union_window: float = 0.0
  # px (of a 640 px frame): a hit whose box sits on the bottom edge and is lower than this is an
  # object that has left; the track ends at its previous hit. The truth shows an object at the bottom
  # edge 22 px high at least (real and synthetic); a track query left behind there boxes a 1-6 px
  # sliver at a confident score, and such a tail outvotes a short track's vouched hits
  # (support_share), so an object in view when tracking starts went uncounted (docs/stage27.md).
  # 0: off; off under SPARSE_FPS.
  exit_sliver: float = 12.0
  # Motion plausibility: a new track is reported only once its box centre has moved down this
  # many px (of a 640 px high frame); 0 turns the rule off.
  min_descent: float = 20.0
  confirm_window: float = 8.0  # frames at 30 FPS a new track has to descend min_descent
  # A track born low in the frame has at most this x the time a fall from rest takes there to
  # descend min_descent; 0: confirm_window everywhere.
  fall_slack: float = 3.0
  # A reported track descending less than min_descent over this many frames (at 30 FPS) is ended
  # where it stopped; 0: never. (No effect with the stage-4/6 weights; with the 320 px ones it ends
  # boxes held on structure at the top edge for 200 frames: docs/tracker_dense.md.)
  stall_window: float = 30.0
  # Under SPARSE_FPS: a birth on the box (IoU > SPOT_IOU) of a birth of the last this many frames
  # (at 30 FPS) is dropped; 0: off.
  sparse_spot_window: float = 20.0
  # A track is a nut when this x its mean nut probability beats its mean bolt probability.
  nut_weight: float = 2.5
  # px (of a 640 px frame): a reported nut track's boxes are shrunk about their centre to at most this
  # wide and high where the object is in view on that side (`boxes.cap_size_xywh`). A nut is rigid and
  # small: fully visible real nuts are 48 px at most (real val truth: p95 47), while the model's nut
  # boxes reach 55 px (p95 on the dense clip, where burned-in tags sit above the objects). 0: off.
  # (44-47 swept: 46 ties for best on the real val frames, 0.746 -> 0.747, and lifts the dense clip
  # 0.799 -> 0.803 and synthetic val 0.674 -> 0.695, counts unchanged; docs/stage28.md.)
  nut_max_size: float = 46.0
  # A reported track's boxes clear of the frame's edges whose log width lies within this of the
  # track's median take that width (`smoothing.steady_width`): objects tumble about a horizontal axis,
  # so their box width hardly changes (the truth: 0.5 % along a track; the model: 3-5 %). 0: off.
  # (0.1 and 0.2 swept offline; at 0.2: dense HOTA 0.803 -> 0.806, synthetic val 0.695 -> 0.697, MOTA
  # 0.740 -> 0.746; without the band every box takes the median and synthetic val loses MOTA; the
  # real val frames, every 10th frame, are unchanged; docs/stage28.md.)
  width_band: float = 0.2
  edge_tolerance: float = counting.EDGE_TOLERANCE  # fraction of the frame height at the bottom edge
  # Frames (at 30 FPS) a reported track is extended back through earlier detections; 0: off
  # (scripts/bench/tune_tracker.py: 8 and 12 equal and best reading the tracked decode only,
  # docs/tracker_dense.md; reading the track-free one too, 16 and 24 tie on the dense clip, docs/stage19.md).
  backfill_window: float = 16.0
  # Score a detect query needs to extend a track back (0.1-0.4 swept: 0.2 best on synthetic val,
  # 0.675 vs 0.680 HOTA at 0.1 on the dense clip, where 0.1 adds 20 false boxes).
  backfill_threshold: float = 0.2
  # Also backfill through the detect queries of the track-free decode (`model.snap_tracks`), which
  # live track queries do not hold down: an object entering beside a track, or under a rejected one,
  # scores 0.9 there for up to 20 frames while the tracked decode scores it 0.1-0.3 (docs/stage19.md).
  backfill_track_free: bool = True
  # px (of a 640 px frame) per frame at 30 FPS by which each earlier box's bottom edge must sit
  # higher: objects enter falling at 6+ px per frame, structure at the top edge stays put (0, 2, 3,
  # 5 swept; 2 and 3 best on the dense clip and synthetic val, docs/stage19.md).
  backfill_fall: float = 2.0
  # Births from the track-free decode (`model.snap_tracks`), which live track queries do not hold
  # down: a detection there scoring >= rescue_threshold and overlapping no live track's box by IoU >
  # rescue_iou, seen rescue_hits times within rescue_window frames (at 30 FPS), starts a track on
  # the tracked decode's detect query that boxes it (IoU >= RESCUE_QUERY_IOU), however low that
  # scores. An object entering right above a tracked one scores 0.1-0.3 in the tracked decode
  # (docs/stage16.md §1, docs/stage20.md). 0: off; off under SPARSE_FPS.
  rescue_hits: int = 4
  rescue_window: float = 8.0
  rescue_threshold: float = 0.7
  rescue_iou: float = 0.2
  # A track hit on boxes that no detection of the track-free decode (`model.snap_tracks`) vouches
  # for in every frame for this many frames (at 30 FPS) ends, reported up to where that began: a
  # carried track query hallucinating an object. A detection vouches for a box when it scores >=
  # support_score and SUPPORT_COVER of the smaller of the two boxes lies in both. 0: off; off under
  # SPARSE_FPS. (4-12 swept: the dense clip's one false track over 15 frames goes, its counts stay
  # exact; synthetic val keeps its exits; a score of 0.2 loses 4-6 synthetic val exits; docs/stage22.md.)
  support_window: float = 8.0
  support_score: float = 0.05
  # A confirmed track that ends with under this share of its hits vouched for (as above) is not
  # reported: a track query that hallucinated a fall too short for support_window (the dense clip
  # under heavy noise: 4 false counts at 0-17 %). The tracks of objects reach 67 % or more on
  # synthetic val and 95 % on the dense clip; false tracks 36 % at most (docs/stage25.md).
  # 0: off; off under SPARSE_FPS.
  support_share: float = 0.5
  # Frames (at 30 FPS) each side of a box over which a finished track's boxes are smoothed (a local
  # straight-line fit in time, `mottr.smoothing`); 0: off. Counts, tracks.txt and tracks.json use
  # the smoothed boxes; the annotated video draws them as they came. (tune_tracker.py
  # --smooth_window 0,2,3,4,6: 3 and 4 tie on synthetic val, 3 on the dense clip; docs/tracker_dense.md.)
  smooth_window: float = 3.0
  # Fit the smoothing's y corners to a fall under GRAVITY rather than a straight line (dense clip
  # HOTA +0.004 at smooth_window 3; longer windows do no better; docs/stage19.md).
  smooth_gravity: bool = True

  @classmethod
  def from_config(cls, config: Any) -> "TrackerSettings":
    """The `tracker` section of a model config (ConfigDict or dict); missing keys (a checkpoint
    older than the section) keep their defaults."""
    section = config.get("tracker") if config is not None else None
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in dict(section or {}).items() if k in known})

  def birth_threshold_at(self, rate: float) -> float:
    """The birth threshold for a source processed at `rate` frames per second of video."""
    return self.sparse_birth_threshold if rate < SPARSE_FPS else self.birth_threshold


_DEFAULT = TrackerSettings()
SPOT_IOU = 0.3  # a birth on a recent birth's box
GRAVITY = 0.41  # px/frame² at 30 FPS (640 px frames): objects fall from rest with this acceleration
REST_BOTTOM = -46.0  # px: where an object's bottom edge starts falling (it shows at ~22 px)
BACKFILL_IOU = 0.3  # an earlier detection continues a track's first box back in time
UNION_COVER = 0.8  # fraction of a track's box inside another track's box for it to count as held
UNION_APART_IOU = 0.1  # two held boxes overlapping less than this are two objects
RESCUE_QUERY_IOU = 0.5  # a tracked-decode detect query on a track-free sighting's box
# px (of a 640 px frame): a sighting must lie this far below the top edge. An object still crossing
# it is born from its own detect query once in view; rescued there, it carries a weaker query
# (synthetic val: one more exit lost, docs/stage20.md).
RESCUE_TOP_MARGIN = 2.0
# Frames in a row without a detection that the entry backfill walks over (noisy boxes of an object still
# crossing the top edge; 1 and 2 equal on the dense clip, docs/stage22.md).
BACKFILL_GAPS = 1
SUPPORT_COVER = 0.5  # of the smaller box, in both: a track-free detection vouches for a track's box


@dataclasses.dataclass(frozen=True)
class _Detections:
  """One processed frame's detect queries scoring >= backfill_threshold (candidates for backfill)."""
  frame: int
  boxes: np.ndarray  # [K, 4] xywh px
  scores: np.ndarray
  labels: np.ndarray
  probs: np.ndarray | None

  @staticmethod
  def concat(parts: list["_Detections"]) -> "_Detections":
    """One frame's candidates from several decodes."""
    if len(parts) == 1:
      return parts[0]
    probs = None if any(p.probs is None for p in parts) else np.concatenate([p.probs for p in parts])
    return _Detections(parts[0].frame, *(np.concatenate([getattr(p, f) for p in parts])
                                         for f in ("boxes", "scores", "labels")), probs)


@dataclasses.dataclass
class _Sighting:
  """A chain of track-free detections beside the live tracks, frame to frame (a rescue candidate)."""
  frames: list[int]
  boxes: list[np.ndarray]

  def expected(self, frame: int) -> np.ndarray:
    """Its box moved on to `frame` at the chain's last vertical speed (none with one sighting)."""
    box = np.array(self.boxes[-1], np.float64)
    if len(self.frames) > 1:
      speed = (box[1] - self.boxes[-2][1]) / (self.frames[-1] - self.frames[-2])
      box[1] += speed * (frame - self.frames[-1])
    return box


@dataclasses.dataclass
class _Live:
  track: Track
  slot: int
  misses: int = 0
  state: str = "confirmed"  # "tentative" (not yet seen falling), "confirmed" or "rejected"
  recent: list | None = None  # a rejected track's (frame, box) hits of the last confirm_window frames
  duplicate_since: int | None = None  # first frame of its current run on an older track's box
  union_since: int | None = None  # first frame of its current run holding two other tracks' boxes
  unsupported_since: int | None = None  # first frame of its current run that no detection vouched for
  checks: list = dataclasses.field(default_factory=list)  # (frame, vouched for) of its hits checked


class TrackSet:
  """The ended tracks of a tracker (MOTR's `Tracker`, the baselines' `SortTracker`): its live
  entries in `_live` end through its `_end`, which puts reportable tracks in `_finished`."""
  _live: list
  _finished: list[Track]

  def _end(self, live: Any) -> None:
    raise NotImplementedError

  def pop_finished(self) -> list[Track]:
    """Tracks that ended (died, or were retired) since the last call, in id order."""
    finished = sorted(self._finished, key=lambda t: t.track_id)
    self._finished = []
    return finished

  def finish(self) -> list[Track]:
    """Ends every live track (end of video); returns the reportable ones not yet popped, by id."""
    for live in self._live:
      self._end(live)
    self._live = []
    return self.pop_finished()


class Tracker(TrackSet):
  """Turns per-frame query outputs into tracks with stable ids (MOTR's runtime track set).

  A live track in slot s is hit when its query scores >= keep_threshold and missed otherwise;
  after more than `miss_tolerance` consecutive misses (frames at 30 FPS, scaled to `fps`) it
  dies and frees its slot. Its query is carried while it is missing. A detect query scoring
  >= birth_threshold starts a new track (ids 1, 2, ... in order of birth) in a free slot unless
  its box overlaps this frame's box of a live track (hit or missed, tentative or rejected too) or
  of a stronger birth of the same frame by IoU > duplicate_iou. With duplicate_window > 0, of two
  tracks hit on boxes overlapping by IoU > duplicate_iou in every frame for duplicate_window frames
  (at 30 FPS) the younger ends, reported up to where the overlap began: two queries on one object
  would otherwise count it twice. With union_window > 0 a track whose box holds two other confirmed
  tracks' boxes for union_window frames ends likewise (`TrackerSettings.union_window`). With
  rescue_hits > 0 a chain of track-free detections beside the live tracks starts a track too, and
  with support_window > 0 a track that no track-free detection vouches for ends (module doc).

  Motion plausibility (on when min_descent > 0; see the module doc): `confirm_window` and
  `stall_window` are frames at 30 FPS of the video timeline; frame indices advance by
  `frame_step` per processed frame, which runs at `fps` processed frames per second (so every
  10th frame of a 30 FPS video is fps=3, frame_step=10). A decision is taken at hits only.
  Tracks that are not confirmed when they die are dropped (`rejected_tracks` counts them).
  With spot_window > 0 (frames at 30 FPS; `from_settings` sets it under SPARSE_FPS only) a birth on a
  recent birth's box is dropped (`spot_births`; see the module doc).
  """

  def __init__(self, num_slots: int, *, birth_threshold: float = _DEFAULT.birth_threshold,
               keep_threshold: float = _DEFAULT.keep_threshold,
               miss_tolerance: int = _DEFAULT.miss_tolerance,
               duplicate_iou: float = _DEFAULT.duplicate_iou,
               duplicate_window: float = _DEFAULT.duplicate_window,
               union_window: float = _DEFAULT.union_window,
               exit_sliver: float = _DEFAULT.exit_sliver,
               min_descent: float = _DEFAULT.min_descent,
               confirm_window: float = _DEFAULT.confirm_window,
               fall_slack: float = _DEFAULT.fall_slack, stall_window: float = _DEFAULT.stall_window,
               class_weights: tuple[float, ...] | None = (1.0, _DEFAULT.nut_weight),
               nut_max_size: float = _DEFAULT.nut_max_size, width_band: float = _DEFAULT.width_band,
               spot_window: float = 0.0, backfill_window: float = _DEFAULT.backfill_window,
               backfill_threshold: float = _DEFAULT.backfill_threshold,
               backfill_track_free: bool = _DEFAULT.backfill_track_free,
               backfill_fall: float = _DEFAULT.backfill_fall,
               rescue_hits: int = _DEFAULT.rescue_hits, rescue_window: float = _DEFAULT.rescue_window,
               rescue_threshold: float = _DEFAULT.rescue_threshold, rescue_iou: float = _DEFAULT.rescue_iou,
               support_window: float = _DEFAULT.support_window,
               support_score: float = _DEFAULT.support_score,
               support_share: float = _DEFAULT.support_share,
               smooth_window: float = _DEFAULT.smooth_window,
               smooth_gravity: bool = _DEFAULT.smooth_gravity, fps: float = schema.FPS, frame_step: int = 1,
               frame_size: tuple[int, int] = (schema.WIDTH, schema.HEIGHT)):
    self.num_slots = num_slots
    self.birth_threshold = birth_threshold
    self.keep_threshold = keep_threshold
    self.max_misses = max(1, math.ceil(miss_tolerance * fps / schema.FPS - 1e-9))
    self.duplicate_iou = duplicate_iou
    self.duplicate_window = duplicate_window
    self.merged_tracks = 0  # younger tracks ended on an older track's object
    self.union_window = union_window
    self.union_tracks = 0  # tracks ended for spanning two tracked objects
    self.exit_sliver = exit_sliver * frame_size[1] / schema.HEIGHT  # px of this frame
    self.exited_tracks = 0  # tracks ended on a sliver at the bottom edge
    self.min_descent = min_descent
    # px of this frame: min_descent is given for the challenge's 640 px high frames.
    self.descent_px = min_descent * frame_size[1] / schema.HEIGHT
    self.confirm_window = confirm_window
    self.fall_slack = fall_slack
    self.spot_window = spot_window
    self._spots: list[tuple[int, np.ndarray]] = []  # (frame, box) of recent births
    self.spot_births = 0  # births dropped on a spot where a track was born shortly before
    self.stall_window = stall_window
    self.backfill_window = backfill_window
    self.backfill_threshold = backfill_threshold
    self.backfill_track_free = backfill_track_free
    self.backfill_fall = backfill_fall
    self._recent: list[_Detections] = []  # candidates of the frames a backfill may reach, in order
    self.backfilled_boxes = 0
    self.rescue_hits = rescue_hits
    self.rescue_window = rescue_window
    self.rescue_threshold = rescue_threshold
    self.rescue_iou = rescue_iou
    self._sightings: list[_Sighting] = []
    self.rescued_births = 0  # tracks started from the track-free decode's sightings
    self.support_window = support_window
    self.support_score = support_score
    self.unsupported_tracks = 0  # tracks ended for boxes no track-free detection vouched for
    self.support_share = support_share
    self.unvouched_tracks = 0  # confirmed tracks not reported: too few of their hits vouched for
    self.smooth_window = smooth_window
    self.smooth_gravity = smooth_gravity
    self.class_weights = None if class_weights is None else tuple(float(w) for w in class_weights)
    self.nut_max_size = nut_max_size
    self.width_band = width_band
    # Frames at 30 FPS per unit of frame index.
    self.frames_30_per_index = schema.FPS / (fps * frame_step)
    self.width, self.height = frame_size
    self.dropped_births = 0  # births lost because every slot was taken
    self.rejected_tracks = 0  # tracks never seen falling (not reported)
    self.retired_tracks = 0  # confirmed tracks that stopped falling (reported up to there)
    self.released_tracks = 0  # rejected tracks dropped when their box started falling
    self._live: list[_Live] = []
    self._finished: list[Track] = []
    self._next_id = 1

  @classmethod
  def from_settings(cls, num_slots: int, settings: TrackerSettings, *, fps: float,
                    frame_step: int, frame_size: tuple[int, int]) -> "Tracker":
    """The tracker of a source whose processed frames run at `fps / frame_step` per second of
    video: below SPARSE_FPS the sparse birth threshold and spot window, and no entry backfill (an
    object moves too far between frames for its earlier boxes to be told from its neighbours')."""
    rate = fps / frame_step
    return cls(num_slots, birth_threshold=settings.birth_threshold_at(rate),
               keep_threshold=settings.keep_threshold, miss_tolerance=settings.miss_tolerance,
               duplicate_iou=settings.duplicate_iou, duplicate_window=settings.duplicate_window,
               union_window=settings.union_window,
               exit_sliver=settings.exit_sliver if rate >= SPARSE_FPS else 0.0, min_descent=settings.min_descent,
               confirm_window=settings.confirm_window, fall_slack=settings.fall_slack,
               stall_window=settings.stall_window, class_weights=(1.0, settings.nut_weight),
               nut_max_size=settings.nut_max_size, width_band=settings.width_band,
               fps=rate, spot_window=settings.sparse_spot_window if rate < SPARSE_FPS else 0.0,
               backfill_window=settings.backfill_window if rate >= SPARSE_FPS else 0.0,
               backfill_threshold=settings.backfill_threshold,
               backfill_track_free=settings.backfill_track_free, backfill_fall=settings.backfill_fall,
               rescue_hits=settings.rescue_hits if rate >= SPARSE_FPS else 0,
               rescue_window=settings.rescue_window, rescue_threshold=settings.rescue_threshold,
               rescue_iou=settings.rescue_iou,
               support_window=settings.support_window if rate >= SPARSE_FPS else 0.0,
               support_score=settings.support_score,
               support_share=settings.support_share if rate >= SPARSE_FPS else 0.0,
               smooth_window=settings.smooth_window,
               smooth_gravity=settings.smooth_gravity,
               frame_step=frame_step, frame_size=frame_size)

  @property
  def motion_check(self) -> bool:
    return self.min_descent > 0

  @property
  def live(self) -> list[Track]:
    """Reportable tracks alive after the last update (hit or missing; tentative and rejected
    ones are not), in id order."""
    return [l.track for l in self._live if l.state == "confirmed"]

  def _elapsed(self, first: int, last: int) -> float:
    """Frames at 30 FPS between two frame indices."""
    return (last - first) * self.frames_30_per_index

  def _moved_off(self, live: _Live, frame: int, box: np.ndarray) -> bool:
    """Whether a rejected track's box has moved down min_descent px within confirm_window
    frames: its query left the structure (it may be following, or hiding, a falling object), so
    it is dropped and the object can be born as a track of its own."""
    live.recent = [(f, b) for f, b in (live.recent or [])
                   if self._elapsed(f, frame) <= self.confirm_window + 1e-9] + [(frame, box)]
    centre = lambda b: b[1] + b[3] / 2
    return centre(live.recent[-1][1]) - centre(live.recent[0][1]) >= self.descent_px

  def _window(self, box: np.ndarray) -> float:
    """Frames (at 30 FPS) a track born with this box has to descend min_descent px: confirm_window,
    or with fall_slack > 0 at most fall_slack x the time an object there takes to fall that far at
    the speed of a fall from rest (objects enter falling, so one born low in the frame must be fast)."""
    if self.fall_slack <= 0:
      return self.confirm_window
    scale = schema.HEIGHT / self.height  # to px of a 640 px high frame
    bottom = (box[1] + box[3]) * scale
    speed = math.sqrt(2 * GRAVITY * max(bottom - REST_BOTTOM, 1.0))
    return min(self.confirm_window, self.fall_slack * self.min_descent / speed)

  def _left(self, box: np.ndarray) -> bool:
    """Whether a hit box is a sliver on the bottom edge (exit_sliver): its object has left."""
    return 0 < box[3] < self.exit_sliver and box[1] + box[3] >= self.height - schema.EDGE_TOL_PX

  def _judge(self, live: _Live) -> None:
    """Motion plausibility after a hit: confirms, rejects or retires the track."""
    t = live.track
    centre = lambda k: t.boxes[k][1] + t.boxes[k][3] / 2
    if live.state == "tentative":
      if centre(-1) - centre(0) >= self.descent_px:
        live.state = "confirmed"
        self._backfill(live)
      elif self._elapsed(t.frames[0], t.frames[-1]) >= self._window(t.boxes[0]):
        live.state = "rejected"
        self.rejected_tracks += 1
    elif live.state == "confirmed" and self.stall_window > 0:
      start = t.frames[-1] - self.stall_window / self.frames_30_per_index
      k = next(i for i, f in enumerate(t.frames) if f >= start - 1e-9)
      if k > 0 and centre(-1) - centre(k - 1) < self.descent_px:
        # No real descent since hit k - 1, at least stall_window frames ago: it stopped there.
        self._finished.append(t.first(k))
        live.state = "rejected"
        self.retired_tracks += 1

  def _pixel_boxes(self, out: FrameOutput) -> np.ndarray:
    """Every query's box of `out` as xywh px clipped to the frame."""
    return clip_xywh(boxes_lib.cxcywh_to_xywh_px(np.asarray(out.boxes, np.float64), self.width, self.height),
                     self.width, self.height)

  def _candidates(self, out: FrameOutput, boxes: np.ndarray, queries: np.ndarray,
                  frame_index: int) -> _Detections:
    """The queries of `out` (px `boxes` of `_pixel_boxes`) that may extend a track back: visible,
    scoring >= backfill_threshold."""
    kept = queries[(out.scores[queries] >= self.backfill_threshold) & (boxes[queries, 2] > 0)
                   & (boxes[queries, 3] > 0)]
    probs = getattr(out, "class_scores", None)
    return _Detections(frame_index, boxes[kept], out.scores[kept], out.labels[kept],
                       None if probs is None else probs[kept])

  def _backfill(self, live: _Live) -> None:
    """Extends a reported track back through the recent frames' detections (module doc)."""
    t = live.track
    others = [l.track for l in self._live if l is not live]
    born = t.frames[0]
    gaps = 0
    for past in reversed(self._recent):
      if past.frame >= born:
        continue
      if self._elapsed(past.frame, born) > self.backfill_window + 1e-9:
        return
      first = t.boxes[0]
      overlap = iou_xywh(first, past.boxes)
      rise = (first[1] + first[3]) - (past.boxes[:, 1] + past.boxes[:, 3])  # of the bottom edge
      fall = self.backfill_fall * self.height / schema.HEIGHT * self._elapsed(past.frame, t.frames[0])
      ok = (overlap >= BACKFILL_IOU) & (rise >= fall)
      for other in others:
        if past.frame in other.frames:
          ok &= iou_xywh(other.boxes[other.frames.index(past.frame)], past.boxes) <= self.duplicate_iou
      if not ok.any():  # no fitting detection in this frame (or none at all)
        gaps += 1
        if gaps > BACKFILL_GAPS:
          return
        continue
      gaps = 0
      k = int(np.argmax(np.where(ok, overlap, -1.0)))
      t.prepend(past.frame, past.boxes[k], past.scores[k], past.labels[k],
                None if past.probs is None else past.probs[k])
      self.backfilled_boxes += 1

  def _rescue(self, out: FrameOutput, boxes: np.ndarray, free: FrameOutput, free_boxes: np.ndarray,
              taken: np.ndarray, frame_index: int) -> list[int]:
    """Detect queries of `out` (px `boxes`) to start tracks on from the sightings of the track-free
    decode `free` (px `free_boxes`; TrackerSettings.rescue_hits) beside the boxes `taken` [K, 4]."""
    ok = (free.scores >= self.rescue_threshold) & (free_boxes[:, 2] > 0) & (free_boxes[:, 3] > 0)
    ok &= free_boxes[:, 1] > RESCUE_TOP_MARGIN * self.height / schema.HEIGHT
    if len(taken):
      ok &= iou_xywh(free_boxes, taken).max(1) <= self.rescue_iou
    self._sightings = [s for s in self._sightings
                       if self._elapsed(s.frames[-1], frame_index) <= self.rescue_window + 1e-9]
    seen = []
    for i in np.flatnonzero(ok)[np.argsort(-free.scores[ok], kind="stable")]:
      earlier = [s for s in self._sightings if s.frames[-1] < frame_index]
      overlap = [iou_xywh(s.expected(frame_index), free_boxes[i])[0, 0] for s in earlier]
      if overlap and max(overlap) >= BACKFILL_IOU:
        chain = earlier[int(np.argmax(overlap))]
        chain.frames.append(frame_index)
        chain.boxes.append(free_boxes[i])
      else:
        chain = _Sighting([frame_index], [free_boxes[i]])
        self._sightings.append(chain)
      seen.append(chain)
    detect = np.arange(self.num_slots, len(out.scores))
    births: list[int] = []
    for chain in seen:
      recent = [f for f in chain.frames if self._elapsed(f, frame_index) <= self.rescue_window + 1e-9]
      if len(recent) < self.rescue_hits:
        continue
      overlap = iou_xywh(chain.boxes[-1], boxes[detect])[0]
      overlap[np.isin(detect, births)] = 0.0
      k = int(np.argmax(overlap))
      if overlap[k] >= RESCUE_QUERY_IOU:
        births.append(int(detect[k]))
        self._sightings.remove(chain)
    return births

  def _drop_duplicates(self, frame: int) -> None:
    """Ends the younger of two tracks hit on one object for duplicate_window frames (class doc)."""
    older: list[_Live] = []
    kept = []
    for live in sorted(self._live, key=lambda l: l.track.track_id):
      t = live.track
      hit = live.state != "rejected" and t.frames[-1] == frame
      boxes = [o.track.boxes[-1] for o in older if o.track.frames[-1] == frame]
      on_older = hit and bool(boxes) and iou_xywh(t.boxes[-1], np.array(boxes)).max() > self.duplicate_iou
      if self._ended_after_run(live, "duplicate_since", on_older, frame, self.duplicate_window):
        self.merged_tracks += 1
        continue
      kept.append(live)
      if hit:
        older.append(live)
    self._live = kept

  def _drop_unions(self, frame: int) -> None:
    """Ends a track hit on a box that holds two other confirmed tracks' boxes of this frame for
    union_window frames (TrackerSettings.union_window), reported up to where that began."""
    hits = {id(l) for l in self._live if l.state != "rejected" and l.track.frames[-1] == frame}
    confirmed = [l for l in self._live if id(l) in hits and l.state == "confirmed"]
    kept = []
    for live in self._live:
      t = live.track
      held = np.array([o.track.boxes[-1] for o in confirmed if o is not live]).reshape(-1, 4)
      held = held[covered_xywh(t.boxes[-1], held) >= UNION_COVER]
      spans_two = id(live) in hits and bool((iou_xywh(held, held) < UNION_APART_IOU).any())
      if self._ended_after_run(live, "union_since", spans_two, frame, self.union_window):
        self.union_tracks += 1
      else:
        kept.append(live)
    self._live = kept

  def _check_support(self, frame: int, free: FrameOutput, free_boxes: np.ndarray) -> None:
    """Counts each track's hits that a detection of the track-free decode `free` (px `free_boxes`)
    vouched for (TrackerSettings.support_share); with support_window > 0 ends a track hit on
    boxes that none vouched for in support_window frames, reported up to where that began."""
    vouch = free_boxes[(free.scores >= self.support_score) & (free_boxes[:, 2] > 0) & (free_boxes[:, 3] > 0)]
    area = vouch[:, 2] * vouch[:, 3]
    vouched = lambda box: (covered_xywh(box, vouch) * area  # the intersection, px²
                           >= SUPPORT_COVER * np.minimum(area, box[2] * box[3])).any()
    kept = []
    for live in self._live:
      t = live.track
      hit = live.state != "rejected" and t.frames[-1] == frame
      alone = hit and not vouched(t.boxes[-1])
      if hit:
        live.checks.append((frame, not alone))
      if self.support_window > 0 and self._ended_after_run(live, "unsupported_since", alone, frame,
                                                           self.support_window):
        self.unsupported_tracks += 1
      else:
        kept.append(live)
    self._live = kept

  def _ended_after_run(self, live: _Live, field: str, holds: bool, frame: int, window: float) -> bool:
    """Follows the run of frames in which `holds` (its first frame in `live.<field>`); once it has
    lasted `window` frames (at 30 FPS) the track ends, reported up to where the run began (True)."""
    since = getattr(live, field) if holds else None
    if holds and since is None:
      since = frame
    setattr(live, field, since)
    if since is None or self._elapsed(since, frame) < window - 1e-9:
      return False
    k = live.track.frames.index(since)
    if live.state == "confirmed" and k > 0:
      self._end(dataclasses.replace(live, track=live.track.first(k)))
    return True

  def _vouched_share(self, live: _Live) -> float:
    """The share of a track's checked hits, up to its last reported frame, that were vouched for."""
    checks = [v for f, v in live.checks if f <= live.track.frames[-1]]
    return sum(checks) / len(checks) if checks else 1.0

  def _end(self, live: _Live) -> None:
    if live.state == "confirmed" and self._vouched_share(live) < self.support_share:
      self.unvouched_tracks += 1
    elif live.state == "confirmed":
      t = live.track
      if self.smooth_window > 0:
        gravity = GRAVITY * self.height / schema.HEIGHT if self.smooth_gravity else 0.0
        t.boxes = list(smoothing.smooth_boxes(np.asarray(t.frames) * self.frames_30_per_index, t.boxes,
                                              self.smooth_window, self.width, self.height, gravity))
      if self.width_band > 0:
        t.boxes = list(smoothing.steady_width(np.asarray(t.boxes), self.width_band, self.width, self.height,
                                              schema.EDGE_TOL_PX))
      if self.nut_max_size > 0 and schema.CATEGORY_NAMES[t.category_id] == "nut":
        t.boxes = list(boxes_lib.cap_size_xywh(
            np.asarray(t.boxes), self.nut_max_size * self.width / schema.WIDTH,
            self.nut_max_size * self.height / schema.HEIGHT, self.width, self.height, schema.EDGE_TOL_PX))
      self._finished.append(t)
    elif live.state == "tentative":
      self.rejected_tracks += 1

  def update(self, out: FrameOutput, frame_index: int) -> np.ndarray:
    """Consumes one frame's output; returns next_slots (int32 [num_slots]) for `Predictor.carry`."""
    if out.num_slots != self.num_slots:
      raise ValueError(f"FrameOutput has {out.num_slots} track slots, tracker has {self.num_slots}")
    boxes = self._pixel_boxes(out)
    visible = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    class_scores = getattr(out, "class_scores", None)
    probs = (lambda q: None) if class_scores is None else (lambda q: class_scores[q])
    detect = np.arange(self.num_slots, len(out.scores))

    slot_boxes = []  # this frame's box of every live track, hit or missed
    survivors = []
    for live in self._live:
      s = live.slot
      if not out.slot_valid[s]:
        raise ValueError(f"track slot {s} holds track {live.track.track_id} but is not valid")
      if out.scores[s] >= self.keep_threshold and visible[s]:
        if live.state == "rejected":
          if self._moved_off(live, frame_index, boxes[s]):
            self.released_tracks += 1
            continue  # dropped: its slot is free and its box no longer suppresses births
        elif self._left(boxes[s]):
          self.exited_tracks += 1
          self._end(live)
          continue
        else:
          live.track.add(frame_index, boxes[s], out.scores[s], out.labels[s], probs(s))
          if self.motion_check:
            self._judge(live)
        live.misses = 0
      else:
        live.misses += 1
      if visible[s]:
        slot_boxes.append(boxes[s])
      if live.misses > self.max_misses:
        self._end(live)
      else:
        survivors.append(live)
    self._live = survivors
    if self.duplicate_window > 0:
      self._drop_duplicates(frame_index)
    if self.union_window > 0:
      self._drop_unions(frame_index)
    alone = getattr(out, "track_free", None)  # the track-free decode's detections
    alone_boxes = None if alone is None else self._pixel_boxes(alone)
    if (self.support_window > 0 or self.support_share > 0) and alone is not None:
      self._check_support(frame_index, alone, alone_boxes)

    if self.backfill_window > 0:
      # A track is reported up to confirm_window frames after its birth, and reaches back
      # backfill_window frames from there.
      memory = self.backfill_window + (self.confirm_window if self.motion_check else 0.0)
      self._recent = [d for d in self._recent if self._elapsed(d.frame, frame_index) <= memory + 1e-9]
      found = [self._candidates(out, boxes, detect, frame_index)]
      if self.backfill_track_free and alone is not None:
        found.append(self._candidates(alone, alone_boxes, np.arange(len(alone.scores)), frame_index))
      self._recent.append(_Detections.concat(found))
    candidates = detect[(out.scores[detect] >= self.birth_threshold) & visible[detect]]
    candidates = candidates[np.argsort(-out.scores[candidates], kind="stable")]
    accepted = []
    if self.spot_window > 0:
      self._spots = [(f, b) for f, b in self._spots
                     if self._elapsed(f, frame_index) <= self.spot_window + 1e-9]
    for q in candidates:
      taken = np.array(slot_boxes + [boxes[a] for a in accepted]).reshape(-1, 4)
      if len(taken) and iou_xywh(boxes[q], taken).max() > self.duplicate_iou:
        continue  # a duplicate of a live track or of a stronger birth
      if self._spots and iou_xywh(boxes[q], np.array([b for _, b in self._spots])).max() > SPOT_IOU:
        self.spot_births += 1
        self._spots.append((frame_index, boxes[q]))  # the spot stays blocked while it fires
      else:
        accepted.append(q)
    if self.spot_window > 0:
      self._spots.extend((frame_index, boxes[a]) for a in accepted)
    if self.rescue_hits > 0 and alone is not None:
      taken = np.array(slot_boxes + [boxes[a] for a in accepted]).reshape(-1, 4)
      for q in self._rescue(out, boxes, alone, alone_boxes, taken, frame_index):
        duplicate = len(taken) and iou_xywh(boxes[q], taken).max() > self.duplicate_iou
        if q not in accepted and visible[q] and not duplicate:
          accepted.append(q)
          self.rescued_births += 1

    used = {l.slot for l in self._live}
    free = [s for s in range(self.num_slots) if s not in used]
    # Births that find no free slot evict rejected tracks, the longest-lived first.
    evictable = sorted((l for l in self._live if l.state == "rejected"),
                       key=lambda l: l.track.track_id)
    while len(free) < len(accepted) and evictable:
      gone = evictable.pop(0)
      self._live.remove(gone)
      free.append(gone.slot)
    next_slots = np.full(self.num_slots, -1, np.int32)
    for live in self._live:
      next_slots[live.slot] = live.slot
    self.dropped_births += max(0, len(accepted) - len(free))
    for q, slot in zip(accepted, free):
      track = Track(self._next_id, class_weights=self.class_weights)
      self._next_id += 1
      track.add(frame_index, boxes[q], out.scores[q], out.labels[q], probs(q))
      self._live.append(_Live(track, slot, state="tentative" if self.motion_check else "confirmed"))
      if not self.motion_check and self.backfill_window > 0:
        self._backfill(self._live[-1])
      next_slots[slot] = q
    self._live.sort(key=lambda l: l.track.track_id)
    return next_slots
