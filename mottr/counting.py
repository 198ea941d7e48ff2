"""The one "fell through the bottom" rule, applied to predicted and ground-truth tracks alike.

A track fell through when it vanished moving down with its last box at the bottom edge: its
bottom, carried along the track's recent constant-acceleration motion (fitted from its last
boxes, in the frame timeline it is given) over the exit horizon, reaches within
`edge_tolerance * height` of the frame's bottom. The horizon is one frame step (the frames
between two observations: 1 for a video at any frame rate, e.g. 10 for every 10th frame), and
at least `EXIT_HORIZON_S` seconds when the timeline's fps is given, as a detector may miss the
last slivers of an object crossing the edge. So at 30 FPS a track last seen ~45 px above the
edge while falling at exit speed (~24 px/frame) counts, and at 15 or 10 FPS, where the last
visible box may end 40-60 px above the edge, one frame's motion carries it there. A track still
in view on the final frame counts only if it touches the edge there; tracks that stop, rise,
vanish mid-frame or leave through a side are never counted.
"""
import dataclasses
from typing import Any, Sequence

import numpy as np

from mottr import schema
from mottr.schema import Track

EDGE_TOLERANCE = 0.02  # fraction of the frame height
EXIT_HORIZON_S = 1 / 15  # a track's last hit may come this long before its object has left
MOTION_WINDOW = 3  # last boxes whose centre must move down
FIT_WINDOW = 6  # last boxes an edge's constant-acceleration motion is fitted to


@dataclasses.dataclass(frozen=True)
class Event:
  """One object that fell through: its last frame (0-based), track id and category name."""
  frame: int
  track_id: int
  category: str


@dataclasses.dataclass
class Counts:
  counts: dict[str, int]  # {"bolt": n, "nut": m}
  events: list[Event]  # in frame order


def exit_horizon(frame_step: int = 1, fps: float | None = None) -> float:
  """Frames (of the timeline) a vanished track's motion is carried: one frame step, and at least
  `EXIT_HORIZON_S` seconds when the timeline's fps is known."""
  return float(frame_step) if fps is None else max(float(frame_step), EXIT_HORIZON_S * fps)


def fell_through(frames: Sequence[int], boxes_xywh_px: Sequence[Sequence[float]], height: float, *,
                 final_frame: int | None = None, frame_step: int = 1, fps: float | None = None,
                 edge_tolerance: float = EDGE_TOLERANCE) -> bool:
  """Whether a track (increasing frames, xywh pixel boxes) left through the bottom edge.

  Args:
    frames: frame indices of the track's boxes, increasing.
    boxes_xywh_px: its boxes, COCO xywh in pixels (clipped to the frame or not).
    height: frame height in pixels.
    final_frame: the last frame of the video; a track seen there has not vanished.
    frame_step: frames between two observed frames (1 for a whole video).
    fps: frames per second of the frame-index timeline (sets the exit horizon; see
      `exit_horizon`); None: one frame step.
    edge_tolerance: how close to the bottom edge counts as "at the edge", fraction of height.

  The track must move down over its last `MOTION_WINDOW` boxes (centre). The top and the bottom
  edge are then each extrapolated over the exit horizon by a least-squares parabola (constant
  acceleration; a line with two boxes) through the last `FIT_WINDOW` boxes where that edge lies
  inside the frame (clipping freezes an edge while the object crosses the border); the larger
  advance is used. Time is the frame index, so the fit works in whatever timeline it is given
  (e.g. a 15 FPS video where the motion per frame is 4x a 30 FPS one's acceleration).
  """
  if len(frames) < 2:
    return False
  f = np.asarray(frames, np.float64)
  f -= f[-1]
  b = np.asarray(boxes_xywh_px, np.float64).reshape(-1, 4)
  top, bottom = b[:, 1], b[:, 1] + b[:, 3]
  recent = slice(-MOTION_WINDOW, None)
  if np.polyfit(f[recent], (top[recent] + bottom[recent]) / 2, 1)[0] <= 0:  # not moving down
    return False
  edge = height * (1 - edge_tolerance)
  if (final_frame is not None and frames[-1] >= final_frame) or bottom[-1] >= edge:
    return bottom[-1] >= edge
  horizon = exit_horizon(frame_step, fps)
  advance = 0.0
  for e, inside in ((top, top > schema.EDGE_TOL_PX),
                    (bottom, bottom < height - schema.EDGE_TOL_PX)):
    t, e = f[inside][-FIT_WINDOW:], e[inside][-FIT_WINDOW:]
    if len(t) >= 2:  # times are relative to the last box (0), so t <= 0
      fit = np.polyfit(t, e, min(2, len(t) - 1))
      advance = max(advance, np.polyval(fit, horizon) - np.polyval(fit, 0.0))
  return bottom[-1] + advance >= edge


def count_tracks(tracks: Sequence[Track], *, height: float = schema.HEIGHT,
                 final_frame: int | None = None, frame_step: int = 1, fps: float | None = None,
                 edge_tolerance: float = EDGE_TOLERANCE) -> Counts:
  """Counts the tracks that fell through (`fell_through`), per category name, with one event per
  such track."""
  counts = {name: 0 for name in schema.CATEGORY_NAMES.values()}
  events = []
  for t in tracks:
    if fell_through(t.frames, t.boxes, height, final_frame=final_frame, frame_step=frame_step,
                    fps=fps, edge_tolerance=edge_tolerance):
      name = schema.CATEGORY_NAMES[t.category_id]
      counts[name] += 1
      events.append(Event(t.frames[-1], t.track_id, name))
  events.sort(key=lambda e: (e.frame, e.track_id))
  return Counts(counts, events)


def frame_step_of(image_ids: Sequence[int]) -> int:
  """The usual step between the frames of a (possibly sparse) frame list: their median gap."""
  ids = np.unique(np.asarray(image_ids, np.int64))
  return int(np.median(np.diff(ids))) if len(ids) > 1 else 1


def count_coco(coco: dict[str, Any], *, fps: float | None = None,
               edge_tolerance: float = EDGE_TOLERANCE) -> Counts:
  """Applies `count_tracks` to a challenge-schema dict, its frame list and frame height; fps
  defaults to its `info.fps` (e.g. a copy at another frame rate), else the challenge's 30."""
  image_ids = [im["id"] for im in coco["images"]]
  heights = {im.get("height", schema.HEIGHT) for im in coco["images"]} or {schema.HEIGHT}
  return count_tracks(schema.tracks_from_coco(coco), height=max(heights),
                      final_frame=max(image_ids, default=1) - 1,
                      frame_step=frame_step_of(image_ids),
                      fps=fps or schema.coco_fps(coco), edge_tolerance=edge_tolerance)
