"""The one "fell through the bottom" rule, applied to predicted and ground-truth tracks alike.

A track fell through when it vanished moving down with its last box at the bottom edge: its
bottom, carried one frame step further along the track's recent motion, reaches within
`edge_tolerance * height` of the frame's bottom. With every frame (step 1) this is simply "last
box at the bottom edge"; with sparse frames (e.g. every 10th) the step covers the frames between
two observations. A track still in view on the final frame counts only if it touches the edge
there; tracks vanishing mid-frame or through a side are never counted.
"""
import collections
import dataclasses
from typing import Any, Sequence

import numpy as np

from data_prep import challenge
from mottr.tracker import Track

EDGE_TOLERANCE = 0.02  # fraction of the frame height
MOTION_WINDOW = 3  # last boxes used to extrapolate the motion


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


def fell_through(frames: Sequence[int], boxes_xywh_px: Sequence[Sequence[float]], height: float, *,
                 final_frame: int | None = None, frame_step: int = 1,
                 edge_tolerance: float = EDGE_TOLERANCE) -> bool:
  """Whether a track (increasing frames, xywh pixel boxes) left through the bottom edge.

  Args:
    frames: frame indices of the track's boxes, increasing.
    boxes_xywh_px: its boxes, COCO xywh in pixels (clipped to the frame or not).
    height: frame height in pixels.
    final_frame: the last frame of the video; a track seen there has not vanished.
    frame_step: frames between two observed frames (1 for a whole video).
    edge_tolerance: how close to the bottom edge counts as "at the edge", fraction of height.

  The motion over one more `frame_step` is extrapolated from the last three boxes (a parabola,
  as objects accelerate; a line with two boxes), for the top and the bottom edge separately
  because clipping freezes one of them while the object crosses the frame's border; the larger
  advance is used.
  """
  if len(frames) < 2:
    return False
  f = np.asarray(frames[-MOTION_WINDOW:], np.float64)
  f -= f[-1]
  b = np.asarray(boxes_xywh_px[-MOTION_WINDOW:], np.float64).reshape(-1, 4)
  top, bottom = b[:, 1], b[:, 1] + b[:, 3]
  if np.polyfit(f, (top + bottom) / 2, 1)[0] <= 0:  # not moving down
    return False
  edge = height * (1 - edge_tolerance)
  if final_frame is not None and frames[-1] >= final_frame:
    return bottom[-1] >= edge
  degree = min(2, len(f) - 1)
  advance = max(np.polyval(np.polyfit(f, e, degree), frame_step) - e[-1] for e in (top, bottom))
  return bottom[-1] + max(advance, 0.0) >= edge


def count_tracks(tracks: Sequence[Track], *, height: float = challenge.HEIGHT,
                 final_frame: int | None = None, frame_step: int = 1,
                 edge_tolerance: float = EDGE_TOLERANCE) -> Counts:
  """Counts the tracks that fell through, per category name, with one event per such track."""
  counts = {name: 0 for name in challenge.CATEGORY_NAMES.values()}
  events = []
  for t in tracks:
    if fell_through(t.frames, t.boxes, height, final_frame=final_frame, frame_step=frame_step,
                    edge_tolerance=edge_tolerance):
      name = challenge.CATEGORY_NAMES[t.category_id]
      counts[name] += 1
      events.append(Event(t.frames[-1], t.track_id, name))
  events.sort(key=lambda e: (e.frame, e.track_id))
  return Counts(counts, events)


def tracks_from_coco(coco: dict[str, Any]) -> list[Track]:
  """Tracks of a challenge-schema dict (ground truth or our tracks.json), by track id.

  Frames are 0-based (image_id - 1); an annotation's `score` is kept, 1.0 where absent.
  """
  by_id = collections.defaultdict(list)
  for ann in coco["annotations"]:
    by_id[int(ann["track_id"])].append(ann)
  tracks = []
  for track_id in sorted(by_id):
    track = Track(track_id)
    for ann in sorted(by_id[track_id], key=lambda a: a["image_id"]):
      track.add(ann["image_id"] - 1, ann["bbox"], ann.get("score", 1.0), ann["category_id"] - 1)
    tracks.append(track)
  return tracks


def frame_step_of(image_ids: Sequence[int]) -> int:
  """The usual step between the frames of a (possibly sparse) frame list: their median gap."""
  ids = np.unique(np.asarray(image_ids, np.int64))
  return int(np.median(np.diff(ids))) if len(ids) > 1 else 1


def count_coco(coco: dict[str, Any], *, edge_tolerance: float = EDGE_TOLERANCE) -> Counts:
  """Applies `count_tracks` to a challenge-schema dict, its frame list and frame height."""
  image_ids = [im["id"] for im in coco["images"]]
  heights = {im.get("height", challenge.HEIGHT) for im in coco["images"]} or {challenge.HEIGHT}
  return count_tracks(tracks_from_coco(coco), height=max(heights),
                      final_frame=max(image_ids, default=1) - 1,
                      frame_step=frame_step_of(image_ids), edge_tolerance=edge_tolerance)
