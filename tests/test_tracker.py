"""Tracker birth/death on scripted per-frame query outputs."""
import dataclasses

import numpy as np
import pytest

from mottr import tracker as tracker_lib

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
  t = tracker_lib.Tracker(NUM_SLOTS)
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
  t = tracker_lib.Tracker(NUM_SLOTS, fps=30)
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
  assert tracker_lib.Tracker(NUM_SLOTS, fps=15).max_misses == 3
  assert tracker_lib.Tracker(NUM_SLOTS, fps=3).max_misses == 1  # at least one miss is tolerated
  assert tracker_lib.Tracker(NUM_SLOTS, fps=60).max_misses == 10


def test_duplicate_birth_of_a_hit_track_is_suppressed():
  t = tracker_lib.Tracker(NUM_SLOTS)
  t.update(frame(detects=[(0.9, BOX_A)]), 0)
  shifted = (BOX_A[0] + 0.005, BOX_A[1], BOX_A[2], BOX_A[3])  # IoU ~0.9 with BOX_A
  next_slots = t.update(frame(slots=[(0.9, BOX_A)], detects=[(0.95, shifted), (0.8, BOX_B)],
                              valid=[True, False]), 1)
  assert [tr.track_id for tr in t.live] == [1, 2]
  assert list(next_slots) == [0, NUM_SLOTS + 1]
  assert t.suppressed_births == 1
  # Two detect queries on one new object give one track (the stronger one).
  t2 = tracker_lib.Tracker(NUM_SLOTS)
  assert list(t2.update(frame(detects=[(0.8, BOX_A), (0.9, shifted)]), 0)) == [NUM_SLOTS + 1, -1]
  assert len(t2.live) == 1 and t2.suppressed_births == 1


def test_birth_on_a_missed_track_is_suppressed_too():
  t = tracker_lib.Tracker(NUM_SLOTS, duplicate_iou=0.3)
  t.update(frame(detects=[(0.9, BOX_A)]), 0)
  shifted = (BOX_A[0], BOX_A[1] + 0.03, BOX_A[2], BOX_A[3])  # IoU ~0.54 with BOX_A
  # The track's query scores below keep_threshold (a miss) but its box still claims the object.
  t.update(frame(slots=[(0.2, BOX_A)], detects=[(0.95, shifted)], valid=[True, False]), 1)
  assert [tr.track_id for tr in t.live] == [1] and t.suppressed_births == 1
  # A stricter overlap rule lets the same detection be born.
  t2 = tracker_lib.Tracker(NUM_SLOTS, duplicate_iou=0.7)
  t2.update(frame(detects=[(0.9, BOX_A)]), 0)
  t2.update(frame(slots=[(0.2, BOX_A)], detects=[(0.95, shifted)], valid=[True, False]), 1)
  assert [tr.track_id for tr in t2.live] == [1, 2]


def test_births_beyond_free_slots_drop_the_lowest_scores():
  t = tracker_lib.Tracker(NUM_SLOTS)
  box_c = (0.5, 0.5, 0.1, 0.1)
  next_slots = t.update(frame(detects=[(0.75, BOX_A), (0.95, BOX_B), (0.85, box_c)]), 0)
  assert list(next_slots) == [NUM_SLOTS + 1, NUM_SLOTS + 2]
  assert [tr.scores[0] for tr in t.live] == pytest.approx([0.95, 0.85])
  assert t.dropped_births == 1


def test_finish_ends_live_tracks_and_class_is_the_majority_vote():
  t = tracker_lib.Tracker(NUM_SLOTS)
  t.update(frame(detects=[(0.9, BOX_A, 1)]), 0)
  for f, label in zip(range(1, 4), (0, 0, 1)):
    t.update(frame(slots=[(0.7, BOX_A, label)], valid=[True, False]), f)
  t.update(frame(slots=[(0.9, BOX_A, 0)], valid=[True, False]), 4)
  (track,) = t.finish()
  assert track.labels == [1, 0, 0, 1, 0] and track.category_id == 1
  assert t.live == [] and t.finish() == []


def test_slot_without_track_query_is_an_error():
  t = tracker_lib.Tracker(NUM_SLOTS)
  t.update(frame(detects=[(0.9, BOX_A)]), 0)
  with pytest.raises(ValueError, match="not valid"):
    t.update(frame(slots=[(0.9, BOX_A)], valid=[False, False]), 1)


def test_boxes_outside_the_frame_are_clipped_or_missed():
  t = tracker_lib.Tracker(NUM_SLOTS)
  t.update(frame(detects=[(0.9, (0.5, 0.98, 0.1, 0.1))]), 0)
  np.testing.assert_allclose(t.live[0].boxes[0], [288, 595.2, 64, 44.8], atol=1e-4)
  t.update(frame(slots=[(0.9, (0.5, 1.2, 0.1, 0.1))], valid=[True, False]), 1)  # wholly below
  assert t.live[0].frames == [0]


def test_iou_xywh():
  others = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
  iou = tracker_lib.iou_xywh(np.array([[0, 0, 10, 10]]), others)
  np.testing.assert_allclose(iou, [[1, 1 / 3, 0]], atol=1e-6)
