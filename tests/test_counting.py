"""The fell-through rule on hand-made tracks and on the real val annotations."""
import json
import os

import numpy as np
import pytest

from mottr import counting
from mottr.boxes import clip_xywh
from mottr.schema import Track
from mottr import schema

H = 640
STROMA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "stroma")


def falling(track_id=1, x=300.0, size=(60.0, 60.0), start=0, end=None, vx=0.0, y0=-60.0, v0=5.0,
            accel=0.41, labels=None):
  """A clipped track falling from above the frame (one box per frame while visible)."""
  t = Track(track_id)
  for i, f in enumerate(range(start, start + 200)):
    box = clip_xywh(np.array([x + vx * i, y0 + v0 * i + 0.5 * accel * i * i, *size]), 640, H)
    if end is not None and f > end:
      break
    if box[2] > 0 and box[3] > 0:
      label = 0 if labels is None else labels[len(t.frames) % len(labels)]
      t.add(f, box, 0.9, label)
  return t


def test_object_leaving_through_the_bottom_is_counted():
  t = falling()
  assert t.boxes[-1][1] + t.boxes[-1][3] == H  # clipped at the bottom edge
  assert counting.fell_through(t.frames, t.boxes, H)


def test_object_lost_mid_frame_or_moving_up_is_not_counted():
  t = falling(end=30)
  assert t.boxes[-1][1] + t.boxes[-1][3] < 500
  assert not counting.fell_through(t.frames, t.boxes, H)
  up = falling()
  assert not counting.fell_through(up.frames[::-1][:2][::-1], [up.boxes[-1], up.boxes[-2]], H)
  assert not counting.fell_through(up.frames[-1:], up.boxes[-1:], H)  # one box: no motion


def test_object_leaving_through_a_side_is_not_counted():
  t = falling(x=500, v0=0.5, accel=0.02, vx=6.0)
  assert t.boxes[-1][0] + t.boxes[-1][2] == 640 and t.boxes[-1][1] + t.boxes[-1][3] < 400
  assert not counting.fell_through(t.frames, t.boxes, H)


def test_object_still_in_view_at_the_end_is_not_counted_unless_at_the_edge():
  t = falling(end=44)
  bottom = t.boxes[-1][1] + t.boxes[-1][3]
  assert 600 < bottom < 627  # would reach the edge next frame...
  assert counting.fell_through(t.frames, t.boxes, H)
  assert not counting.fell_through(t.frames, t.boxes, H, final_frame=44)  # ...but the video ended
  edge = falling(end=45)
  assert counting.fell_through(edge.frames, edge.boxes, H, final_frame=45)


def test_sparse_frames_extrapolate_over_the_frame_step():
  t = falling()
  frames, boxes = t.frames[::10], t.boxes[::10]  # the object leaves before the next sample
  assert frames[-1] + 10 > t.frames[-1] and boxes[-1][1] + boxes[-1][3] < 560
  assert counting.fell_through(frames, boxes, H, frame_step=10)
  assert not counting.fell_through(frames, boxes, H, frame_step=1)


def test_count_tracks_per_class_by_majority_with_events():
  tracks = [falling(1, start=0, labels=[1, 1, 0]),  # mostly nut
            falling(2, start=10, labels=[0]),
            falling(3, start=20, end=35, labels=[0]),  # lost mid-frame
            falling(4, start=5, labels=[0, 0, 1])]
  result = counting.count_tracks(tracks, final_frame=1000)
  assert result.counts == {"bolt": 2, "nut": 1}
  assert [(e.track_id, e.category) for e in result.events] == [(1, "nut"), (4, "bolt"), (2, "bolt")]
  assert [e.frame for e in result.events] == [tracks[0].frames[-1], tracks[3].frames[-1],
                                              tracks[1].frames[-1]]


def test_tracks_from_coco_round_trip():
  coco = {"images": [{"id": i + 1, "height": H} for i in range(100)], "annotations": [
      {"image_id": f + 1, "track_id": 7, "category_id": 2, "bbox": list(map(float, b))}
      for f, b in zip(falling().frames, falling().boxes)]}
  (t,) = schema.tracks_from_coco(coco)
  assert t.track_id == 7 and t.category_id == 2 and t.scores[0] == 1.0
  assert t.frames == falling().frames
  assert counting.count_coco(coco).counts == {"bolt": 0, "nut": 1}


def test_frame_step_of():
  assert counting.frame_step_of([100, 110, 120, 140, 150]) == 10
  assert counting.frame_step_of([5]) == 1


def _real_val():
  path = os.path.join(STROMA, "annotations", "instances_val.json")
  if not os.path.isfile(path):
    pytest.skip(f"{path} absent: the real Stroma reference data is not on this machine")
  with open(path) as f:
    return json.load(f)


def test_real_val_annotations_count_72_bolts_19_nuts():
  coco = _real_val()
  result = counting.count_coco(coco)
  assert result.counts == {"bolt": 72, "nut": 19}
  assert len({e.track_id for e in result.events}) == 91


def test_real_val_sparse_frames_count_the_same():
  coco = _real_val()
  frames_dir = os.path.join(STROMA, "frames", "val")
  ids = {int(f[:-4]) for f in os.listdir(frames_dir) if f.endswith(".jpg")}
  tracks = schema.tracks_from_coco(
      dict(coco, annotations=[a for a in coco["annotations"] if a["image_id"] in ids]))
  result = counting.count_tracks(tracks, final_frame=len(coco["images"]) - 1,
                                 frame_step=counting.frame_step_of(sorted(ids)))
  assert result.counts == {"bolt": 72, "nut": 19}
