"""The fell-through rule at 30, 15 and 10 FPS: exits seen last well above the edge still count;
tracks that stop, rise or fade out mid-frame do not.

Hand-made tracks fall like the real objects: y = y0 + 0.5 * a * t^2 with a = 0.41 px/frame^2 at
30 FPS (t in 30 FPS frames), sampled every 1, 2 or 3 frames and renumbered as the frames of a
30, 15 or 10 FPS video (frame step 1 in its own timeline, 4x / 9x the acceleration per frame).
"""
import json
import os

import numpy as np
import pytest

from mottr import counting
from mottr.boxes import clip_xywh
from mottr import schema

H = 640.0
ACCEL = 0.41  # px/frame^2 at 30 FPS
START = -70.0  # the bottom of a box starts this far above the top edge, at rest
STROMA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "stroma")
STRIDES = (1, 2, 3)  # 30, 15, 10 FPS


def fall_time(bottom: float) -> float:
  """30 FPS frames after release at which a box's bottom reaches `bottom`."""
  return float(np.sqrt(2 * (bottom - START) / ACCEL))


def sampled(stride: int, last_time: float, y_of_t, size=(60.0, 70.0), noise=0.0, rng=None):
  """Frames (0-based, the strided video's own timeline) and clipped xywh boxes of a track whose
  box bottom follows y_of_t(t) (t in 30 FPS frames), sampled every `stride` frames up to
  last_time; boxes entirely outside the frame are left out."""
  times = last_time - stride * np.arange(200)[::-1]
  frames, boxes = [], []
  for i, t in enumerate(times[times >= 0]):
    box = np.array([300.0, y_of_t(t) - size[1], *size])
    if noise:
      box[:2] += rng.normal(0, noise, 2)
      box[2:] += rng.normal(0, noise, 2)
    box = clip_xywh(box, 640, H)
    if box[2] > 0 and box[3] > 0:
      frames.append(i)
      boxes.append(box)
  return frames, boxes


def falling(t: float) -> float:
  return START + 0.5 * ACCEL * t * t


def count(frames, boxes, stride, **kw):
  return counting.fell_through(frames, boxes, H, fps=30.0 / stride, **kw)


@pytest.mark.parametrize("stride", STRIDES)
def test_exit_seen_last_45_px_above_the_edge_counts(stride):
  frames, boxes = sampled(stride, fall_time(H - 45), falling)
  assert H - (boxes[-1][1] + boxes[-1][3]) == pytest.approx(45, abs=1e-6)
  speed = ACCEL * fall_time(H - 45) * stride  # px per frame of this video
  assert speed > 45 if stride > 1 else 23 < speed < 24
  assert count(frames, boxes, stride)
  # Without the timeline's fps, one frame step: at 30 FPS a 45 px gap is 2 frames (a miss).
  assert counting.fell_through(frames, boxes, H) == (stride > 1)


@pytest.mark.parametrize("stride", STRIDES)
def test_every_phase_of_a_real_exit_counts(stride):
  """Sampled at any phase, an object crossing the bottom edge (last box >= 22 px visible) counts."""
  end = fall_time(H + 70 - 22)  # the last 30 FPS frame with 22 px of the 70 px box visible
  for phase in range(stride):
    frames, boxes = sampled(stride, np.floor(end) - phase, falling)
    assert H - (boxes[-1][1] + boxes[-1][3]) < 25 * stride
    assert count(frames, boxes, stride), phase


@pytest.mark.parametrize("stride", STRIDES)
def test_fading_out_mid_frame_does_not_count(stride):
  for bottom in (300.0, 450.0, 540.0 if stride < 3 else 520.0):
    frames, boxes = sampled(stride, fall_time(bottom), falling)
    assert not count(frames, boxes, stride), bottom


@pytest.mark.parametrize("stride", STRIDES)
def test_stopping_above_the_edge_does_not_count(stride):
  stop = fall_time(H - 45)
  frames, boxes = sampled(stride, stop + 3 * stride, lambda t: falling(min(t, stop)))
  assert H - (boxes[-1][1] + boxes[-1][3]) == pytest.approx(45, abs=1e-6)
  assert not count(frames, boxes, stride)
  # Braking from 500 px down (constant deceleration) to a halt 45 px above the edge.
  start = fall_time(500.0)
  v = ACCEL * start
  decel = v * v / (2 * (H - 45 - 500))
  brake = lambda t: (falling(t) if t < start
                     else 500 + v * (t - start) - decel / 2 * (t - start) ** 2)
  frames, boxes = sampled(stride, start + v / decel, brake)
  assert H - (boxes[-1][1] + boxes[-1][3]) == pytest.approx(45, abs=1e-6)
  assert not count(frames, boxes, stride)


@pytest.mark.parametrize("stride", STRIDES)
def test_rising_does_not_count(stride):
  turn = fall_time(H - 30)
  bounce = lambda t: falling(min(t, turn)) - 8.0 * max(t - turn, 0.0)
  frames, boxes = sampled(stride, turn + 2 * stride, bounce)
  assert not count(frames, boxes, stride)


@pytest.mark.parametrize("stride", STRIDES)
def test_still_in_view_at_the_end_counts_only_at_the_edge(stride):
  frames, boxes = sampled(stride, fall_time(H - 45), falling)
  assert not count(frames, boxes, stride, final_frame=frames[-1])
  frames, boxes = sampled(stride, fall_time(H + 20), falling)  # crossing the edge at the end
  assert count(frames, boxes, stride, final_frame=frames[-1])


@pytest.mark.parametrize("stride", STRIDES)
def test_noisy_boxes_keep_the_decision(stride):
  """Boxes with 2 px noise: exits 45 px above the edge all count, fades 120 px above never do."""
  rng = np.random.default_rng(stride)
  for _ in range(30):
    size = (rng.uniform(30, 120), rng.uniform(30, 120))
    exit_ = sampled(stride, fall_time(H - 45), falling, size, noise=2.0, rng=rng)
    fade_bottom = H - 120 - 30 * (stride - 1)
    fade = sampled(stride, fall_time(fade_bottom), falling, size, noise=2.0, rng=rng)
    assert count(*exit_, stride)
    assert not count(*fade, stride)


def test_exit_horizon():
  assert counting.exit_horizon(1, 30.0) == pytest.approx(2.0)
  assert counting.exit_horizon(1, 15.0) == 1.0 == counting.exit_horizon(1, 10.0)
  assert counting.exit_horizon(10, 30.0) == 10.0  # sparse frames: one step
  assert counting.exit_horizon(3) == 3.0


def test_count_coco_reads_fps_from_info():
  frames, boxes = sampled(1, fall_time(H - 45), falling)
  coco = {"images": [{"id": i + 1, "height": H} for i in range(frames[-1] + 10)],
          "annotations": [{"image_id": f + 1, "track_id": 3, "category_id": 1,
                           "bbox": [float(v) for v in b]} for f, b in zip(frames, boxes)]}
  assert schema.coco_fps(coco) == 30.0  # a challenge file
  assert counting.count_coco(coco).counts["bolt"] == 1  # 2 frames of 30 FPS: 46 px
  assert counting.count_coco(coco, fps=10.0).counts["bolt"] == 0  # one frame: 23 px
  assert counting.count_coco(dict(coco, info={"fps": 10.0})).counts["bolt"] == 0


def test_real_val_annotations_count_the_same_at_15_and_10_fps():
  path = os.path.join(STROMA, "annotations", "instances_val.json")
  if not os.path.isfile(path):
    pytest.skip(f"{path} absent: the real Stroma reference data is not on this machine")
  with open(path) as f:
    coco = json.load(f)
  n = len(coco["images"])
  for stride in (2, 3):
    for phase in range(stride):
      new_index = {i + 1: (i - phase) // stride for i in range(phase, n, stride)}
      copy = {"images": [{"id": j + 1, "height": H} for j in range(len(new_index))],
              "annotations": [dict(a, image_id=new_index[a["image_id"]] + 1)
                              for a in coco["annotations"] if a["image_id"] in new_index]}
      result = counting.count_coco(copy, fps=30.0 / stride)
      assert result.counts == {"bolt": 72, "nut": 19}, (stride, phase)


def test_real_val_tracks_cut_before_their_exit():
  """Real tracks cut where their last box ends up to 45 px above the edge (a detector missing the
  slivers of the crossing) still count at 30 FPS; cut above 500 px they never do."""
  path = os.path.join(STROMA, "annotations", "instances_val.json")
  if not os.path.isfile(path):
    pytest.skip(f"{path} absent: the real Stroma reference data is not on this machine")
  with open(path) as f:
    tracks = schema.tracks_from_coco(json.load(f))
  cuts = 0
  for t in tracks:
    bottoms = np.array([b[1] + b[3] for b in t.boxes])
    for k in np.flatnonzero((bottoms >= H - 45) & (bottoms < H - 2)) + 1:
      assert counting.fell_through(t.frames[:k], t.boxes[:k], H, fps=30.0), (t.track_id, k)
      cuts += 1
    mid = np.flatnonzero(bottoms < 500)[-1] + 1
    assert not counting.fell_through(t.frames[:mid], t.boxes[:mid], H, fps=30.0)
  assert cuts > len(tracks)  # most tracks have two boxes in the last 45 px
