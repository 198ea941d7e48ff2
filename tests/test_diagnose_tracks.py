"""scripts/bench/diagnose_tracks.py: outcome of every true exit and every extra predicted exit."""

import numpy as np

import diagnose_tracks
from mottr import counting
from mottr.schema import Track


def _track(track_id, x, frames, label=0, dx=0.0):
  t = Track(track_id)
  for f in frames:
    t.add(f, np.array([x + dx, 100.0 + 20 * f, 50.0, 50.0]), 0.9, label)
  return t


def test_outcomes_of_true_and_predicted_exits():
  frames = range(10)
  gt = [_track(1, 100, frames), _track(2, 300, frames), _track(3, 500, frames, label=1)]
  true = counting.Counts({"bolt": 2, "nut": 1}, [counting.Event(9, 1, "bolt"),
                                                 counting.Event(9, 2, "bolt"),
                                                 counting.Event(9, 3, "nut")])
  # Object 1 tracked (5 px off), object 2 never, object 3 tracked as a bolt; a track on nothing.
  pred = [_track(7, 100, frames, dx=5), _track(8, 500, frames, label=0), _track(9, 10, frames)]
  predicted = counting.Counts({"bolt": 3, "nut": 0}, [counting.Event(9, 7, "bolt"),
                                                      counting.Event(9, 8, "bolt"),
                                                      counting.Event(9, 9, "bolt")])
  d = diagnose_tracks.diagnose(gt, true, pred, predicted)
  assert d["exits"] == {"counted": 1, "never tracked": 1, "counted, wrong class": 1}
  assert d["extra"] == {"on no object": 1}
  iou = 45 * 50 / (2 * 2500 - 45 * 50)  # 5 px shift of a 50 px box
  np.testing.assert_allclose(d["iou_birth"], (iou + 1 + 0) / 3)
  np.testing.assert_allclose(d["covered"], 2 / 3)  # objects 1 and 3 in every frame, 2 never


def _static(track_id, x, frames, y=300.0):
  t = Track(track_id)
  for f in frames:
    t.add(f, np.array([x, y, 50.0, 50.0]), 0.9, 0)
  return t


def test_confusion_table_and_false_tracks():
  frames = range(10)
  gt = [_track(1, 100, frames), _track(3, 500, frames, label=1)]
  true = counting.Counts({"bolt": 1, "nut": 1}, [counting.Event(9, 1, "bolt"),
                                                 counting.Event(9, 3, "nut")])
  # Bolt counted as a bolt, the nut counted as a bolt, one count on nothing; two static false
  # tracks on scene structure: 40 and 12 frames long.
  pred = [_track(7, 100, frames), _track(8, 500, frames), _track(9, 300, frames, label=1),
          _static(10, 20, range(100, 140)), _static(11, 20, range(200, 212))]
  predicted = counting.Counts({"bolt": 2, "nut": 1}, [counting.Event(9, 7, "bolt"),
                                                      counting.Event(9, 8, "bolt"),
                                                      counting.Event(9, 9, "nut")])
  d = diagnose_tracks.diagnose(gt, true, pred, predicted)
  assert d["confusion"] == {("bolt", "bolt"): 1, ("nut", "bolt"): 1, ("none", "nut"): 1}
  assert d["false_tracks"] == 3  # tracks 9, 10, 11
  assert d["long_false_tracks"] == 1 and d["longest_false_track"].track_id == 10
  table = diagnose_tracks.confusion_markdown(d["confusion"])
  assert "| bolt | 1 | 0 | 0 |" in table and "| nut | 1 | 0 | 0 |" in table
  assert "| none | 0 | 1 | - |" in table


def test_a_never_counted_exit_is_in_the_none_column():
  frames = range(10)
  gt = [_track(1, 100, frames)]
  true = counting.Counts({"bolt": 1, "nut": 0}, [counting.Event(9, 1, "bolt")])
  d = diagnose_tracks.diagnose(gt, true, [], counting.Counts({"bolt": 0, "nut": 0}, []))
  assert d["confusion"] == {("bolt", "none"): 1}
  assert d["false_tracks"] == 0 and d["longest_false_track"] is None



def test_one_count_is_credited_to_one_object_of_a_merged_pair():
  """Two objects falling one behind the other, followed by one counted track: one exit counted, the
  other 'counted as another object' (the track covers the first one most)."""
  frames = range(10)
  gt = [_track(1, 100, frames), _track(2, 100, range(3, 13))]
  true = counting.Counts({"bolt": 2, "nut": 0}, [counting.Event(9, 1, "bolt"), counting.Event(12, 2, "bolt")])
  merged = _track(7, 100, frames)
  for f in range(10, 13):
    merged.add(f, gt[1].boxes[f - 3], 0.9, 0)
  predicted = counting.Counts({"bolt": 1, "nut": 0}, [counting.Event(12, 7, "bolt")])
  d = diagnose_tracks.diagnose(gt, true, [merged], predicted)
  assert d["exits"] == {"counted": 1, "counted as another object": 1}
  assert d["confusion"] == {("bolt", "bolt"): 1, ("bolt", "none"): 1}


def test_a_second_count_of_one_object_names_the_object_and_the_track():
  frames = range(10)
  gt = [_track(1, 100, frames), _track(2, 400, frames)]
  true = counting.Counts({"bolt": 2, "nut": 0}, [counting.Event(9, 1, "bolt"), counting.Event(9, 2, "bolt")])
  # Tracks 7 and 8 both on object 1 (8 born later, a few px off), track 9 on object 2.
  pred = [_track(7, 100, frames), _track(8, 100, range(4, 10), dx=4), _track(9, 400, frames)]
  predicted = counting.Counts({"bolt": 3, "nut": 0}, [counting.Event(9, t, "bolt") for t in (7, 8, 9)])
  d = diagnose_tracks.diagnose(gt, true, pred, predicted)
  assert d["extra"] == {"same object again": 1} and d["twice"] == [(1, 8)]
  assert d["exits"] == {"counted": 2}
