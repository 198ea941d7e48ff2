"""Tracker birth/death on scripted per-frame query outputs."""
import dataclasses

import numpy as np
import pytest

from mottr import counting
from mottr import tracker as tracker_lib
from mottr import boxes
from mottr import schema
from mottr import smoothing

NUM_SLOTS = 2
NUM_DETECT = 3
BOX_A = (0.25, 0.25, 0.1, 0.1)  # normalised cxcywh
BOX_B = (0.75, 0.75, 0.1, 0.1)


@dataclasses.dataclass
class Out:
  scores: np.ndarray
  labels: np.ndarray
  boxes: np.ndarray
  num_slots: int
  slot_valid: np.ndarray
  class_scores: np.ndarray | None = None
  track_free: "Out | None" = None


def static_tracker(*args, **kwargs):
  """A tracker for births and deaths of scripted boxes that do not move: no motion rule, no backfill."""
  return tracker_lib.Tracker(*args, **dict({"min_descent": 0, "backfill_window": 0}, **kwargs))


def frame(slots=(), detects=(), valid=None):
  """Builds one output: `slots` and `detects` are lists of (score, box, label) or None."""
  n = NUM_SLOTS + NUM_DETECT
  scores, labels = np.zeros(n, np.float32), np.zeros(n, np.int32)
  boxes = np.tile(np.float32([0.5, 0.5, 0.05, 0.05]), (n, 1))
  for i, q in list(enumerate(slots)) + [(NUM_SLOTS + j, q) for j, q in enumerate(detects)]:
    if q is not None:
      scores[i], boxes[i], labels[i] = q[0], q[1], q[2] if len(q) > 2 else 0
  slot_valid = np.zeros(NUM_SLOTS, bool) if valid is None else np.asarray(valid)
  return Out(scores, labels, boxes, NUM_SLOTS, slot_valid)


def test_birth_needs_birth_threshold_and_carries_the_detect_query():
  t = static_tracker(NUM_SLOTS, birth_threshold=0.7)
  assert list(t.update(frame(detects=[(0.69, BOX_A)]), 0)) == [-1, -1]
  assert t.live == []
  next_slots = t.update(frame(detects=[None, (0.7, BOX_A, 1)]), 1)
  assert list(next_slots) == [NUM_SLOTS + 1, -1]
  (track,) = t.live
  assert track.track_id == 1 and track.frames == [1] and track.category_id == 2
  np.testing.assert_allclose(track.boxes[0], [128, 128, 64, 64])  # 640x640 pixels, xywh
  # The track continues in its slot.
  assert list(t.update(frame(slots=[(0.9, BOX_A)], valid=[True, False]), 2)) == [0, -1]
  assert t.live[0].frames == [1, 2]


def test_track_survives_five_misses_and_dies_at_the_sixth():
  t = static_tracker(NUM_SLOTS, keep_threshold=0.6, fps=30)
  t.update(frame(detects=[(0.8, BOX_A)]), 0)
  live = [True, False]
  t.update(frame(slots=[(0.59, BOX_A)], valid=live), 1)  # below keep_threshold 0.6: a miss
  t.update(frame(slots=[(0.6, BOX_A)], valid=live), 2)  # a hit resets the misses
  for f in range(3, 8):
    assert list(t.update(frame(slots=[(0.1, BOX_A)], valid=live), f)) == [0, -1]  # still carried
    assert len(t.live) == 1 and t.pop_finished() == []
  assert list(t.update(frame(slots=[(0.1, BOX_A)], valid=live), 8)) == [-1, -1]
  assert t.live == []
  (dead,) = t.pop_finished()
  assert dead.frames == [0, 2]  # only hits are recorded
  assert t.pop_finished() == []


def test_miss_tolerance_scales_with_fps():
  assert static_tracker(NUM_SLOTS, fps=15).max_misses == 3
  assert static_tracker(NUM_SLOTS, fps=3).max_misses == 1  # at least one miss is tolerated
  assert static_tracker(NUM_SLOTS, fps=60).max_misses == 10


def test_duplicate_birth_of_a_hit_track_is_suppressed():
  t = static_tracker(NUM_SLOTS)
  t.update(frame(detects=[(0.9, BOX_A)]), 0)
  shifted = (BOX_A[0] + 0.005, BOX_A[1], BOX_A[2], BOX_A[3])  # IoU ~0.9 with BOX_A
  next_slots = t.update(frame(slots=[(0.9, BOX_A)], detects=[(0.95, shifted), (0.8, BOX_B)],
                              valid=[True, False]), 1)
  assert [tr.track_id for tr in t.live] == [1, 2]
  assert list(next_slots) == [0, NUM_SLOTS + 1]
  # Two detect queries on one new object give one track (the stronger one).
  t2 = static_tracker(NUM_SLOTS)
  assert list(t2.update(frame(detects=[(0.8, BOX_A), (0.9, shifted)]), 0)) == [NUM_SLOTS + 1, -1]
  assert len(t2.live) == 1


def test_birth_on_a_missed_track_is_suppressed_too():
  t = static_tracker(NUM_SLOTS, duplicate_iou=0.3)
  t.update(frame(detects=[(0.9, BOX_A)]), 0)
  shifted = (BOX_A[0], BOX_A[1] + 0.03, BOX_A[2], BOX_A[3])  # IoU ~0.54 with BOX_A
  # The track's query scores below keep_threshold (a miss) but its box still claims the object.
  t.update(frame(slots=[(0.2, BOX_A)], detects=[(0.95, shifted)], valid=[True, False]), 1)
  assert [tr.track_id for tr in t.live] == [1]
  # A stricter overlap rule lets the same detection be born.
  t2 = static_tracker(NUM_SLOTS, duplicate_iou=0.7)
  t2.update(frame(detects=[(0.9, BOX_A)]), 0)
  t2.update(frame(slots=[(0.2, BOX_A)], detects=[(0.95, shifted)], valid=[True, False]), 1)
  assert [tr.track_id for tr in t2.live] == [1, 2]


def test_the_younger_of_two_tracks_on_one_object_ends_where_their_overlap_began():
  beside = (BOX_A[0], BOX_A[1] + 0.03, BOX_A[2], BOX_A[3])  # IoU ~0.54 with BOX_A: a birth of its own
  on_a = (BOX_A[0] + 0.005, BOX_A[1], BOX_A[2], BOX_A[3])  # IoU ~0.9 with BOX_A
  both = [True, True]

  def run(window, second_boxes):
    t = static_tracker(NUM_SLOTS, duplicate_window=window, smooth_window=0)
    t.update(frame(detects=[(0.9, BOX_A)]), 0)
    slots = [list(t.update(frame(slots=[(0.9, BOX_A)], detects=[(0.9, beside)], valid=[True, False]), 1))]
    for f, box in enumerate(second_boxes, 2):
      slots.append(list(t.update(frame(slots=[(0.9, BOX_A), (0.9, box)], valid=both), f)))
    return t, slots

  t, slots = run(3, [on_a] * 5)  # on track 1's object from frame 2: ended at frame 5
  assert [tr.track_id for tr in t.live] == [1] and t.merged_tracks == 1
  assert slots[3] == [0, 1] and slots[4] == [0, -1]  # its slot is freed when it ends
  (ended,) = t.pop_finished()
  assert ended.track_id == 2 and ended.frames == [1]  # reported up to where the overlap began
  t, _ = run(0, [on_a] * 5)  # the rule off: both live on
  assert [tr.track_id for tr in t.live] == [1, 2] and t.merged_tracks == 0
  t, _ = run(3, [on_a, on_a, beside, on_a, on_a])  # overlaps shorter than the window: both live on
  assert [tr.track_id for tr in t.live] == [1, 2] and t.merged_tracks == 0


def test_a_track_spanning_two_tracked_objects_ends_where_it_began_to():
  left, right = (0.40, 0.5, 0.06, 0.1), (0.52, 0.5, 0.06, 0.1)  # two objects side by side
  union = (0.46, 0.5, 0.2, 0.12)  # one box over both: IoU < 0.7 with each, so both are born

  def out(slots, detects):
    n = 3 + len(detects)
    scores, boxes = np.zeros(n, np.float32), np.tile(np.float32([0.5, 0.5, 0.05, 0.05]), (n, 1))
    for i, box in list(enumerate(slots)) + [(3 + j, box) for j, box in enumerate(detects)]:
      scores[i], boxes[i] = 0.9, box
    return Out(scores, np.zeros(n, np.int32), boxes, 3, np.arange(3) < len(slots))

  def run(window, second=right, frames=6):
    t = static_tracker(3, union_window=window, smooth_window=0)
    t.update(out([], [union]), 0)
    t.update(out([union], [left, second]), 1)
    for f in range(2, frames):
      t.update(out([union, left, second], []), f)
    return t

  t = run(3)  # held both from frame 2: ended at frame 5
  assert [tr.track_id for tr in t.live] == [2, 3] and t.union_tracks == 1
  (ended,) = t.pop_finished()
  assert ended.track_id == 1 and ended.frames == [0, 1]  # reported up to where it began to
  assert [tr.track_id for tr in run(3, frames=5).live] == [1, 2, 3]  # held for less than the window
  assert [tr.track_id for tr in run(0).live] == [1, 2, 3]  # the rule off
  overlapping = (0.44, 0.5, 0.06, 0.1)  # IoU 0.2 with `left`: not two objects apart (nor a duplicate)
  assert [tr.track_id for tr in run(3, second=overlapping).live] == [1, 2, 3]


def test_covered_xywh():
  inner = np.array([[10, 10, 10, 10], [15, 10, 10, 10], [40, 40, 5, 5]], np.float64)
  np.testing.assert_allclose(boxes.covered_xywh([0, 0, 20, 30], inner), [1.0, 0.5, 0.0])


def test_births_beyond_free_slots_drop_the_lowest_scores():
  t = static_tracker(NUM_SLOTS, birth_threshold=0.7)
  box_c = (0.5, 0.5, 0.1, 0.1)
  next_slots = t.update(frame(detects=[(0.75, BOX_A), (0.95, BOX_B), (0.85, box_c)]), 0)
  assert list(next_slots) == [NUM_SLOTS + 1, NUM_SLOTS + 2]
  assert [tr.scores[0] for tr in t.live] == pytest.approx([0.95, 0.85])
  assert t.dropped_births == 1


def test_finish_ends_live_tracks_and_class_without_probabilities_is_the_majority_vote():
  t = static_tracker(NUM_SLOTS)
  t.update(frame(detects=[(0.9, BOX_A, 1)]), 0)
  for f, label in zip(range(1, 4), (0, 0, 1)):
    t.update(frame(slots=[(0.7, BOX_A, label)], valid=[True, False]), f)
  t.update(frame(slots=[(0.9, BOX_A, 0)], valid=[True, False]), 4)
  (track,) = t.finish()
  assert track.labels == [1, 0, 0, 1, 0] and track.category_id == 1
  assert t.live == [] and t.finish() == []


def test_slot_without_track_query_is_an_error():
  t = static_tracker(NUM_SLOTS)
  t.update(frame(detects=[(0.9, BOX_A)]), 0)
  with pytest.raises(ValueError, match="not valid"):
    t.update(frame(slots=[(0.9, BOX_A)], valid=[False, False]), 1)


def test_boxes_outside_the_frame_are_clipped_or_missed():
  t = static_tracker(NUM_SLOTS)
  t.update(frame(detects=[(0.9, (0.5, 0.98, 0.1, 0.1))]), 0)
  np.testing.assert_allclose(t.live[0].boxes[0], [288, 595.2, 64, 44.8], atol=1e-4)
  t.update(frame(slots=[(0.9, (0.5, 1.2, 0.1, 0.1))], valid=[True, False]), 1)  # wholly below
  assert t.live[0].frames == [0]


def test_iou_xywh():
  others = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
  iou = boxes.iou_xywh(np.array([[0, 0, 10, 10]]), others)
  np.testing.assert_allclose(iou, [[1, 1 / 3, 0]], atol=1e-6)


# --- class evidence over a track's life ---------------------------------------------------------


def _track_with(probs, labels=None):
  t = schema.Track(1)
  for f, p in enumerate(probs):
    label = int(np.argmax(p)) if labels is None else labels[f]
    t.add(f, np.array([0, 0, 10, 10.0]), max(p), label, np.array(p))
  return t


def test_class_evidence_beats_the_per_frame_majority_vote():
  # Three frames lean bolt a little, two are clearly nut: the vote says bolt, the evidence nut.
  probs = [(0.55, 0.45), (0.55, 0.45), (0.55, 0.45), (0.05, 0.95), (0.05, 0.95)]
  t = _track_with(probs)
  assert t.labels == [0, 0, 0, 1, 1]
  np.testing.assert_allclose(t.class_evidence, [0.35, 0.65])
  assert t.category_id == 2
  # Without class probabilities (ground truth, COCO tracks) the vote decides as before.
  t.class_probs = []
  assert t.class_evidence is None and t.category_id == 1


def test_class_weights_scale_the_evidence():
  t = _track_with([(0.6, 0.3)] * 4)
  assert t.category_id == 1
  t.class_weights = (1.0, 2.5)  # a nut needs 1/2.5 of the bolt probability
  assert t.category_id == 2


def test_tracker_accumulates_class_scores_of_every_hit():
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=0)
  nutty, boltish = np.float32([0.1, 0.9]), np.float32([0.55, 0.45])
  out = frame(detects=[(0.9, BOX_A, 1)])
  out.class_scores = np.zeros((NUM_SLOTS + NUM_DETECT, 2), np.float32)
  out.class_scores[NUM_SLOTS] = nutty
  t.update(out, 0)
  for f in range(1, 3):
    out = frame(slots=[(0.55, BOX_A, 0)], valid=[True, False])
    out.class_scores = np.tile(boltish, (NUM_SLOTS + NUM_DETECT, 1))
    t.update(out, f)
  (track,) = t.finish()
  assert track.labels == [1, 0, 0]  # the vote would say bolt
  np.testing.assert_allclose(track.class_evidence, [(0.1 + 1.1) / 3, (0.9 + 0.9) / 3], atol=1e-6)
  assert track.category_id == 2


# --- motion plausibility --------------------------------------------------------------------------


def _box_at(cy_px, cx_px=320.0, size=50.0):
  return (cx_px / 640, cy_px / 640, size / 640, size / 640)


def _run(tracker, centres, frames=None, score=0.9, extra_detects=()):
  """Feeds one object whose box centre takes `centres` (px), born from a detect query."""
  frames = list(range(len(centres))) if frames is None else frames
  slot = None
  for k, (f, cy) in enumerate(zip(frames, centres)):
    valid = [False] * NUM_SLOTS
    slots = [None] * NUM_SLOTS
    detects = [(score, _box_at(cy))] if slot is None else []
    if slot is not None:
      valid[slot] = True
      slots[slot] = (score, _box_at(cy))
    next_slots = tracker.update(frame(slots=slots, detects=detects + list(extra_detects), valid=valid), f)
    held = [s for s in range(NUM_SLOTS) if next_slots[s] >= 0]
    slot = held[0] if held else None
  return tracker.finish()


def test_a_static_track_is_never_reported_nor_counted_a_falling_one_is():
  static = _run(tracker_lib.Tracker(NUM_SLOTS, min_descent=20), [300.0] * 40)
  assert static == []
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20)
  fall = [30 + 4 * k + 0.205 * k * k for k in range(45) if 30 + 4 * k + 0.205 * k * k < 640]
  (track,) = _run(t, fall)
  assert track.frames == list(range(len(fall)))  # reported with its whole history from birth
  assert counting.count_tracks([track], final_frame=100).counts == {"bolt": 1, "nut": 0}
  assert t.rejected_tracks == 0


def test_the_rule_off_restores_the_old_behaviour():
  (static,) = _run(tracker_lib.Tracker(NUM_SLOTS, min_descent=0), [300.0] * 40)
  assert static.frames == list(range(40))
  assert counting.count_tracks([static], final_frame=100).counts == {"bolt": 0, "nut": 0}


def test_a_tentative_track_is_not_live_until_it_falls():
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20, confirm_window=8)
  t.update(frame(detects=[(0.9, _box_at(100))]), 0)
  assert t.live == []  # tentative
  t.update(frame(slots=[(0.9, _box_at(110))], valid=[True, False]), 1)
  assert t.live == []
  t.update(frame(slots=[(0.9, _box_at(125))], valid=[True, False]), 2)  # 25 px down: an object
  assert [tr.frames for tr in t.live] == [[0, 1, 2]]


def test_a_rejected_track_holds_its_box_against_rebirths_until_a_birth_needs_its_slot():
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20, confirm_window=8)
  box = _box_at(300)
  t.update(frame(detects=[(0.9, box)]), 0)
  for f in range(1, 12):  # rejected at frame 8; its query stays in slot 0
    next_slots = t.update(frame(slots=[(0.9, box)], detects=[(0.9, box)], valid=[True, False]), f)
    assert list(next_slots) == [0, -1] and t.live == []
  assert t.rejected_tracks == 1  # and the detect query was never reborn (next_slots above)
  # Two new objects elsewhere: one takes the free slot, the other evicts the rejected track.
  next_slots = t.update(frame(slots=[(0.9, box)], detects=[(0.9, BOX_A), (0.85, BOX_B)],
                              valid=[True, False]), 12)
  assert sorted(next_slots) == [NUM_SLOTS, NUM_SLOTS + 1] and t.dropped_births == 0
  assert t.finish() == []  # both still tentative: nothing reported


def test_a_rejected_track_whose_box_starts_falling_is_released_for_the_object():
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20, confirm_window=8)
  t.update(frame(detects=[(0.9, _box_at(300))]), 0)
  for f in range(1, 10):
    t.update(frame(slots=[(0.9, _box_at(300))], valid=[True, False]), f)
  assert t.rejected_tracks == 1
  # Its query slides down with a falling object (25 px in 2 frames): the slot is let go and the
  # detect query on the object is born as a track of its own.
  t.update(frame(slots=[(0.9, _box_at(312))], valid=[True, False]), 10)
  next_slots = t.update(frame(slots=[(0.9, _box_at(325))], detects=[(0.9, _box_at(326))],
                              valid=[True, False]), 11)
  assert t.released_tracks == 1 and list(next_slots) == [NUM_SLOTS, -1]


def test_motion_rule_at_every_tenth_frame():
  """Every 10th frame of a 30 FPS video (3 processed frames per second, index step 10): one step
  is 10 frames, so a new track is judged at its second hit."""
  sparse = lambda: tracker_lib.Tracker(NUM_SLOTS, min_descent=20, confirm_window=8, fps=3,
                                       frame_step=10)
  t = sparse()
  fall = [40.0, 120.0, 240.0, 400.0, 600.0]  # a fall seen every 10th frame
  (track,) = _run(t, fall, frames=[0, 10, 20, 30, 40])
  assert track.frames == [0, 10, 20, 30, 40]
  assert counting.count_tracks([track], final_frame=100, frame_step=10, fps=30).counts["bolt"] == 1
  t = sparse()
  assert _run(t, [300.0, 301.0, 302.0], frames=[0, 10, 20]) == [] and t.rejected_tracks == 1


def test_a_confirmed_track_that_stops_falling_is_retired_where_it_stopped():
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20, confirm_window=8, stall_window=15)
  centres = [100.0 + 10 * k for k in range(10)] + [190.0] * 30
  (track,) = _run(t, centres)
  assert t.retired_tracks == 1
  assert track.frames[0] == 0 and track.frames[-1] in (8, 9)  # reported up to where it stopped


def test_tracker_defaults_are_the_settings_and_the_config_section():
  s, t = tracker_lib.TrackerSettings(), tracker_lib.Tracker(NUM_SLOTS)
  assert (t.birth_threshold, t.keep_threshold, t.duplicate_iou) == (
      s.birth_threshold, s.keep_threshold, s.duplicate_iou)
  assert (t.min_descent, t.confirm_window, t.fall_slack, t.stall_window) == (
      s.min_descent, s.confirm_window, s.fall_slack, s.stall_window)
  assert t.class_weights == (1.0, s.nut_weight)
  assert t.spot_window == 0  # a Tracker is told its spot window (from_settings: under SPARSE_FPS)
  from mottr import config  # pylint: disable=g-import-not-at-top
  assert tracker_lib.TrackerSettings.from_config(config.get_config()) == s
  assert config.get_config().tracker.to_dict() == dataclasses.asdict(s)


def test_the_shipped_model_carries_the_tracker_thresholds():
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  from mottr import checkpoint  # pylint: disable=g-import-not-at-top
  with open(os.path.join(checkpoint.SHIPPED_CHECKPOINT, "config.json")) as f:
    shipped = json.load(f)
  assert set(shipped["tracker"]) == set(dataclasses.asdict(tracker_lib.TrackerSettings()))  # every threshold
  settings = tracker_lib.TrackerSettings.from_config(shipped)
  assert dataclasses.asdict(settings) == shipped["tracker"]  # what the CLIs track with
  assert settings.nut_weight == 1.0  # chosen with the stage-6 weights, kept for stage 7 (plain argmax), not 2.5


def test_a_model_without_a_tracker_section_gets_the_defaults():
  assert tracker_lib.TrackerSettings.from_config({}) == tracker_lib.TrackerSettings()
  assert tracker_lib.TrackerSettings.from_config(
      {"tracker": {"birth_threshold": 0.8}}).birth_threshold == 0.8


def test_from_settings_uses_the_sparse_settings_under_sparse_fps():
  s = tracker_lib.TrackerSettings()
  dense = tracker_lib.Tracker.from_settings(NUM_SLOTS, s, fps=30, frame_step=1, frame_size=(640, 640))
  sparse = tracker_lib.Tracker.from_settings(NUM_SLOTS, s, fps=30, frame_step=10,
                                             frame_size=(640, 640))
  assert (dense.birth_threshold, dense.spot_window, dense.backfill_window) == (
      s.birth_threshold, 0.0, s.backfill_window)
  assert (sparse.birth_threshold, sparse.spot_window, sparse.backfill_window) == (
      s.sparse_birth_threshold, s.sparse_spot_window, 0.0)  # no entry backfill between sparse frames
  assert (dense.rescue_hits, sparse.rescue_hits) == (s.rescue_hits, 0)  # nor rescue births
  assert (dense.support_window, sparse.support_window) == (s.support_window, 0.0)  # nor support


def test_fall_slack_shortens_the_window_of_tracks_born_low_in_the_frame():
  # A box born mid-frame sits still for 5 frames, then "falls" (a query hallucinating a fall):
  # real objects there are already fast. With fall_slack its window is ~3 frames, not 8.
  late = [300.0] * 5 + [300.0 + 12 * k for k in range(1, 25) if 300 + 12 * k < 640]
  assert len(_run(tracker_lib.Tracker(NUM_SLOTS, min_descent=20, confirm_window=8), late)) == 1
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20, confirm_window=8, fall_slack=3)
  assert t._window(np.array([0, 275.0, 50, 50])) < 4
  reported = _run(t, late)
  assert t.rejected_tracks == 1 and all(tr.track_id != 1 for tr in reported)
  # An object entering at the top (its clipped centre moves ~4 px per frame) keeps the full window.
  assert t._window(np.array([0, 0, 50, 20.0])) == 8
  entering = [10 + 3.5 * k + 0.2 * k * k for k in range(40) if 10 + 3.5 * k + 0.2 * k * k < 640]
  assert len(_run(t, entering)) == 1


def test_a_spot_that_keeps_firing_at_every_tenth_frame_starts_one_track():
  """At every 10th frame a track born on structure is carried down by the motion prior; the
  structure fires again. The spot window drops the repeated births, not a new object elsewhere."""
  def run(spot_window):
    t = tracker_lib.Tracker(4, min_descent=20, fps=3, frame_step=10, spot_window=spot_window)
    held = np.full(4, -1)
    for k in range(6):
      n = 4 + 3
      scores, labels = np.zeros(n, np.float32), np.zeros(n, np.int32)
      boxes = np.tile(np.float32(_box_at(600)), (n, 1))
      for s in np.flatnonzero(held >= 0):  # every carried track falls 150 px per step
        scores[s], boxes[s] = 0.9, _box_at(30 + 150 * min(3, k), cx_px=100 + 100 * s)
      scores[4], boxes[4] = 0.9, _box_at(30)  # the spot fires at every step
      if k == 3:
        scores[5], boxes[5] = 0.9, _box_at(30, cx_px=560)  # a real object elsewhere
      held = t.update(Out(scores, labels, boxes, 4, held >= 0), 10 * k)
    return t
  assert run(0.0)._next_id - 1 >= 3  # a new track from the same spot again and again
  t = run(20.0)
  assert t._next_id - 1 == 2 and t.spot_births == 5  # the first birth there, and the other object


def _entering(tracker, low_scores, fall, birth_at):
  """An object whose detect query scores `low_scores[f]` (None: absent) in frames before `birth_at`,
  then is born there and tracked as in `_run`; its centre follows `fall` (px per frame)."""
  for f in range(birth_at):
    detects = [] if low_scores[f] is None else [(low_scores[f], _box_at(fall[f]))]
    tracker.update(frame(detects=detects), f)
  return _run(tracker, fall[birth_at:], frames=list(range(birth_at, len(fall))))


FALL = [20 + 6 * k + 0.205 * k * k for k in range(45) if 20 + 6 * k + 0.205 * k * k < 650]  # leaves at the bottom


@pytest.mark.parametrize("min_descent", [20.0, 0.0])
def test_backfill_extends_a_reported_track_back_through_its_low_scoring_entry(min_descent):
  low = [0.25, 0.45, 0.6, 0.35] + [None] * 40  # below birth_threshold, above backfill_threshold
  off = tracker_lib.Tracker(NUM_SLOTS, min_descent=min_descent, backfill_window=0, smooth_window=0)
  (plain,) = _entering(off, low, FALL, birth_at=4)
  on = tracker_lib.Tracker(NUM_SLOTS, min_descent=min_descent, backfill_window=8, smooth_window=0)
  (filled,) = _entering(on, low, FALL, birth_at=4)
  assert plain.frames[0] == 4 and filled.frames == list(range(len(FALL)))
  assert on.backfilled_boxes == 4 and filled.scores[:4] == pytest.approx(low[:4])
  np.testing.assert_allclose(filled.boxes[0], boxes.clip_xywh(
      boxes.cxcywh_to_xywh_px(np.array(_box_at(FALL[0])), 640, 640), 640, 640))
  counted = lambda t: counting.count_tracks([t], final_frame=len(FALL) + 5).counts
  assert counted(filled) == counted(plain) == {"bolt": 1, "nut": 0}


def test_backfill_stops_at_a_gap_the_window_and_boxes_that_sit_lower():
  fill = lambda low, window=12.0: _entering(
      tracker_lib.Tracker(NUM_SLOTS, min_descent=20, backfill_window=window), low, FALL, birth_at=5)[0].frames[0]
  assert fill([0.5, None, None, 0.5, 0.5]) == 3  # frames 1-2 show nothing: the walk stops there
  assert fill([0.5, 0.5, 0.5, 0.15, 0.15]) == 5  # below backfill_threshold (0.2)
  filled = _entering(tracker_lib.Tracker(NUM_SLOTS, min_descent=20, backfill_window=12),
                     [0.5, None, 0.5, 0.15, 0.5], FALL, birth_at=5)[0]
  assert filled.frames[:4] == [0, 2, 4, 5]  # one frame without a detection is passed over
  assert fill([0.5] * 5, window=2) == 3  # only the last 2 frames are remembered
  still = [FALL[5]] * 5 + FALL[5:]  # the earlier detections sit where the object is at its birth
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20, backfill_window=8)
  low = [0.5] * 5
  assert _entering(t, low, [c + 10 for c in still[:5]] + still[5:], birth_at=5)[0].frames[0] == 5  # lower: not it


def test_backfill_reads_the_track_free_decode_where_track_queries_hold_the_object_down():
  def filled_from(track_free):
    t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20, backfill_window=8, backfill_track_free=track_free,
                            rescue_hits=0)  # the entry is born at frame 4, not rescued
    for f in range(4):  # the frame's own detect query scores 0.05, the track-free decode's 0.9
      out = frame(detects=[(0.05, _box_at(FALL[f]))])
      alone = frame(detects=[None, (0.9, _box_at(FALL[f]))])
      out.track_free = Out(alone.scores[NUM_SLOTS:], alone.labels[NUM_SLOTS:], alone.boxes[NUM_SLOTS:], 0,
                           np.zeros(0, bool))
      t.update(out, f)
    (track,) = _run(t, FALL[4:], frames=list(range(4, len(FALL))))
    return track.frames[0]
  assert filled_from(False) == 4 and filled_from(True) == 0


def test_backfill_fall_takes_an_entering_object_and_not_structure_at_the_top_edge():
  def first(centres, fall):
    t = tracker_lib.Tracker(NUM_SLOTS, min_descent=20, backfill_window=8, backfill_fall=fall)
    return _entering(t, [0.5] * 5, centres + FALL[5:], birth_at=5)[0].frames[0]
  assert first(FALL[:5], 3.0) == first(FALL[:5], 0.0) == 0  # falling 6+ px per frame
  still = [FALL[5]] * 5  # a box sitting where the object is born
  assert first(still, 0.0) == 0 and first(still, 3.0) == 5


def test_backfill_never_takes_another_tracks_box():
  t = tracker_lib.Tracker(NUM_SLOTS, min_descent=0, backfill_window=8)
  other = (0.9, _box_at(FALL[3]))
  t.update(frame(detects=[other]), 3)  # a track born at frame 3 on the box the object will have
  t.update(frame(slots=[(0.9, _box_at(FALL[3]))], detects=[(0.9, _box_at(FALL[4], cx_px=330))],
                 valid=[True, False]), 4)
  first, second = t.finish()
  assert first.frames == [3, 4] and second.frames == [4]


def test_a_finished_track_carries_smoothed_boxes_and_the_window_off_keeps_them_raw():
  rng = np.random.default_rng(0)
  truth = 100.0 + 10 * np.arange(30) + 0.5 * tracker_lib.GRAVITY * np.arange(30) ** 2  # a free fall
  fall = list(truth + rng.normal(0, 3, 30))
  (raw,) = _run(tracker_lib.Tracker(NUM_SLOTS, smooth_window=0), fall)
  np.testing.assert_allclose([b[1] + b[3] / 2 for b in raw.boxes], fall, atol=1e-3)
  err = lambda track: np.abs(np.array([b[1] + b[3] / 2 for b in track.boxes]) - truth).mean()
  for gravity in (False, True):
    (smoothed,) = _run(tracker_lib.Tracker(NUM_SLOTS, smooth_window=3, smooth_gravity=gravity), fall)
    assert smoothed.frames == raw.frames
    np.testing.assert_allclose(smoothed.boxes, smoothing.smooth_boxes(
        raw.frames, raw.boxes, 3, 640, 640, tracker_lib.GRAVITY if gravity else 0.0))
    assert err(smoothed) < 0.7 * err(raw)


def test_the_smoothing_window_is_in_frames_at_30_fps():
  # Every 10th frame (3 FPS): a 3-frame window holds no neighbour, so the boxes stay as they came.
  fall = [100.0 + 40 * k + (7 if k % 2 else -7) for k in range(12)]
  frames = [10 * k for k in range(12)]
  (track,) = _run(tracker_lib.Tracker(NUM_SLOTS, smooth_window=3, fps=3, frame_step=10), fall, frames)
  np.testing.assert_allclose([b[1] + b[3] / 2 for b in track.boxes], fall, atol=1e-3)


def _beside_a_track(rescue_hits, free_frames=(1, 3, 5, 7), entering=False):
  """Object A (50 px) is tracked in slot 0; object B falls 70 px above it (or, `entering`, sits across
  the top edge), its detect query held down at 0.15, while the track-free decode scores B 0.9 in
  `free_frames` (and A, 0.95, in every frame). Returns the tracker and each frame's next_slots."""
  t = static_tracker(NUM_SLOTS, rescue_hits=rescue_hits, rescue_window=8)
  at = lambda f, cy: _box_at(20) if entering and cy == 230 else _box_at(cy + 10 * f)
  carried = [[-1, -1]]
  for f in range(10):
    held = [s >= 0 for s in carried[-1]]
    slots = [(0.9, at(f, 300)) if held[0] else None, (0.9, at(f, 230)) if held[1] else None]
    out = frame(slots=slots, detects=[None if held[0] else (0.9, at(f, 300)), (0.15, at(f, 230))],
                valid=held)
    alone = frame(detects=[(0.95, at(f, 300))] + ([(0.9, at(f, 230))] if f in free_frames else []))
    out.track_free = Out(alone.scores[NUM_SLOTS:], alone.labels[NUM_SLOTS:], alone.boxes[NUM_SLOTS:], 0,
                         np.zeros(0, bool))
    carried.append(list(t.update(out, f)))
  return t, carried[1:]


def test_a_track_free_detection_seen_rescue_hits_times_beside_a_track_starts_one():
  off, carried = _beside_a_track(rescue_hits=0)
  assert off.rescued_births == 0 and all(c[1] == -1 for c in carried)
  on, carried = _beside_a_track(rescue_hits=3)
  # Seen at frames 1, 3 and 5 (every other frame, as the dense clip's upper bolt of a pair): at the
  # third sighting its tracked detect query (index NUM_SLOTS + 1, score 0.15) is born in slot 1.
  assert on.rescued_births == 1 and [c[1] for c in carried[:6]] == [-1] * 5 + [NUM_SLOTS + 1]
  assert [l.track.frames[0] for l in on._live] == [0, 5]
  # The track-free decode's box of the tracked object A (IoU > rescue_iou with it) never starts one.
  assert _beside_a_track(rescue_hits=3, free_frames=())[0].rescued_births == 0
  # Sightings further apart than rescue_window do not add up.
  assert _beside_a_track(rescue_hits=3, free_frames=(0, 9))[0].rescued_births == 0
  # Nor does an object still crossing the top edge: its own detect query will start it once in view.
  assert _beside_a_track(rescue_hits=3, entering=True)[0].rescued_births == 0


def test_a_track_no_track_free_detection_vouches_for_ends_where_that_began():
  """A hit track whose box no detection of the track-free decode holds (a carried query
  hallucinating an object: the dense clip's 22-frame nut box on nothing) ends after support_window
  frames, reported up to where that began; one vouching detection, even partial and scoring
  support_score, restarts the count."""
  half_a = (BOX_A[0], BOX_A[1] + 0.025, BOX_A[2], BOX_A[3] / 2)  # the lower half of BOX_A

  def run(window, vouched, vouch=(0.9, BOX_A)):
    t = static_tracker(NUM_SLOTS, support_window=window, support_score=0.05, rescue_hits=0,
                       smooth_window=0)
    slots = [-1, -1]
    for f in range(8):
      held = [s >= 0 for s in slots]
      out = frame(slots=[(0.9, BOX_A) if held[0] else None], detects=[None if held[0] else (0.9, BOX_A)],
                  valid=held)
      alone = frame(detects=[vouch if f in vouched else (0.9, BOX_B)])
      out.track_free = Out(alone.scores[NUM_SLOTS:], alone.labels[NUM_SLOTS:], alone.boxes[NUM_SLOTS:], 0,
                           np.zeros(0, bool))
      slots = list(t.update(out, f))
    return t

  t = run(4, vouched={0})  # unvouched from frame 1: ended at frame 5, a new track born at frame 6
  assert t.unsupported_tracks == 1 and [tr.track_id for tr in t.live] == [2]
  (ended,) = t.pop_finished()
  assert ended.track_id == 1 and ended.frames == [0]
  assert run(0, vouched={0}).unsupported_tracks == 0  # the rule off
  assert run(4, vouched={0, 3}).unsupported_tracks == 0  # runs over frames 1-2 and 4-7: under 4 frames each
  assert run(4, vouched=set(range(8)), vouch=(0.06, half_a)).unsupported_tracks == 0
  assert run(4, vouched=set(range(8)), vouch=(0.04, half_a)).unsupported_tracks == 1


def test_a_track_ending_with_under_support_share_of_its_hits_vouched_for_is_not_reported():
  """A track query hallucinating a short fall (the dense clip under heavy noise) ends before
  support_window frames unvouched; what it reports is judged by the share of its hits that a
  track-free detection vouched for, up to its last reported frame."""
  def run(share, vouched, frames=6, window=0):
    t = static_tracker(NUM_SLOTS, support_window=window, support_share=share, rescue_hits=0,
                       smooth_window=0)
    slots = [-1, -1]
    for f in range(frames):
      held = slots[0] >= 0
      out = frame(slots=[(0.9, BOX_A) if held else None], detects=[None if held else (0.9, BOX_A)],
                  valid=[held, False])
      alone = frame(detects=[(0.9, BOX_A) if f in vouched else (0.9, BOX_B)])
      out.track_free = Out(alone.scores[NUM_SLOTS:], alone.labels[NUM_SLOTS:], alone.boxes[NUM_SLOTS:], 0,
                           np.zeros(0, bool))
      slots = list(t.update(out, f))
    return t, t.finish()

  # Hits are checked from the frame after the birth (frame 0): frames 1-5.
  t, reported = run(0.5, vouched={0, 1, 2})  # 2 of 5 hits vouched for
  assert t.unvouched_tracks == 1 and reported == []
  t, reported = run(0.5, vouched={1, 2, 3})  # 3 of 5
  assert t.unvouched_tracks == 0 and [r.frames for r in reported] == [list(range(6))]
  assert run(0.0, vouched=set())[1]  # the rule off
  # Without a track-free decode (model.snap_tracks off) nothing is checked and nothing dropped.
  plain = static_tracker(NUM_SLOTS, support_window=0, support_share=0.5, smooth_window=0)
  for f in range(4):
    plain.update(frame(slots=[(0.9, BOX_A) if f else None], detects=[None if f else (0.9, BOX_A)],
                       valid=[f > 0, False]), f)
  assert len(plain.finish()) == 1 and plain.unvouched_tracks == 0
  # Ended by support_window, the track reports frame 0 alone, which no check judges; the track born
  # again on the same unvouched box at frame 5 ends at the last frame unreported.
  t, reported = run(0.5, vouched={0}, frames=8, window=4)
  assert t.unsupported_tracks == 1 and t.unvouched_tracks == 1
  assert [r.frames for r in reported] == [[0]]



@pytest.mark.parametrize("exit_sliver", [12.0, 0.0])
def test_a_hit_on_a_sliver_at_the_bottom_edge_ends_the_track_at_its_previous_hit(exit_sliver):
  """A track query left behind at the bottom edge boxes a few px there: with exit_sliver the track
  ends at its last real hit and frees its slot; a thin box elsewhere, or the rule off, is a hit."""
  low = (0.5, 1 - 30 / 640, 0.1, 40 / 640)  # 40 px high, 10 px above the bottom edge
  sliver = (0.5, 1 - 3 / 640, 0.06, 6 / 640)  # 6 px high, on the bottom edge
  thin = (0.5, 0.5, 0.06, 6 / 640)  # 6 px high, mid-frame
  t = static_tracker(NUM_SLOTS, exit_sliver=exit_sliver)
  t.update(frame(detects=[(0.9, low)]), 0)
  t.update(frame(slots=[(0.9, thin)], valid=[True, False]), 1)
  next_slots = t.update(frame(slots=[(0.8, sliver)], valid=[True, False]), 2)
  if exit_sliver:
    assert list(next_slots) == [-1, -1] and t.live == [] and t.exited_tracks == 1
    (done,) = t.pop_finished()
    assert done.frames == [0, 1]
  else:
    assert list(next_slots) == [0, -1] and t.live[0].frames == [0, 1, 2] and t.exited_tracks == 0
  # Below SPARSE_FPS (an object moves too far between frames) the rule is off.
  settings = tracker_lib.TrackerSettings(exit_sliver=exit_sliver)
  make = lambda fps: tracker_lib.Tracker.from_settings(NUM_SLOTS, settings, fps=fps, frame_step=1, frame_size=(640, 640))
  assert (make(30).exit_sliver, make(3).exit_sliver) == (exit_sliver, 0.0)


def test_cap_size_shrinks_boxes_about_their_centre_and_keeps_clipped_sides():
  capped = boxes.cap_size_xywh(np.array([[100.0, 200.0, 60.0, 50.0],   # inside: both sides capped
                                         [0.0, 200.0, 60.0, 50.0],     # on the left edge: width kept
                                         [300.0, 0.0, 60.0, 50.0],     # on the top edge: height kept
                                         [300.0, 300.0, 30.0, 40.0]]),  # small: unchanged
                               46.0, 46.0, 640, 640, 2.0)
  np.testing.assert_allclose(capped, [[107, 202, 46, 46], [0, 202, 60, 46], [307, 0, 46, 50],
                                      [300, 300, 30, 40]])


@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.parametrize("nut_max_size", [46.0, 0.0])
def test_a_reported_nut_tracks_boxes_are_capped_at_the_nut_size(label, nut_max_size):
  """A nut is rigid and at most ~48 px: a nut track's 64 px boxes are reported 46 px about their
  centre; a bolt's, or any with the cap off, as they came (the live track keeps its raw boxes)."""
  t = static_tracker(NUM_SLOTS, nut_max_size=nut_max_size, smooth_window=0)
  t.update(frame(detects=[(0.9, BOX_A, label)]), 0)
  t.update(frame(slots=[(0.9, BOX_A, label)], valid=[True, False]), 1)
  np.testing.assert_allclose(t.live[0].boxes, [[128, 128, 64, 64]] * 2)
  (track,) = t.finish()
  capped = label == 1 and nut_max_size > 0
  np.testing.assert_allclose(track.boxes, [[137, 137, 46, 46] if capped else [128, 128, 64, 64]] * 2)


def test_the_nut_cap_scales_with_the_frame():
  settings = tracker_lib.TrackerSettings(nut_max_size=46.0, smooth_window=0, min_descent=0, backfill_window=0)
  t = tracker_lib.Tracker.from_settings(NUM_SLOTS, settings, fps=30, frame_step=1, frame_size=(320, 320))
  t.update(frame(detects=[(0.9, BOX_A, 1)]), 0)
  (track,) = t.finish()
  np.testing.assert_allclose(track.boxes, [[68.5, 68.5, 23, 23]])  # a 32 px box in a 320 px frame


@pytest.mark.parametrize("width_band", [0.2, 0.0])
def test_a_reported_track_takes_its_median_width_unless_the_band_is_off(width_band):
  widths = [60, 64, 58, 62, 60, 61]  # px
  t = static_tracker(NUM_SLOTS, width_band=width_band, smooth_window=0)
  for f, w in enumerate(widths):
    box = (0.5, 0.5, w / 640, 0.1)
    t.update(frame(slots=[(0.9, box)] if f else [], detects=[] if f else [(0.9, box)], valid=[f > 0, False]), f)
  (track,) = t.finish()
  assert [b[2] for b in track.boxes] == pytest.approx([60.5] * 6 if width_band else widths)
  assert [b[0] + b[2] / 2 for b in track.boxes] == pytest.approx([320] * 6)
