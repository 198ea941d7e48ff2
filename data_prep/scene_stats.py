"""Scene statistics of a challenge-format split, for calibrating the synthetic generator.

Every function takes a COCO dict as written in `annotations/instances_{split}.json`
(with `track_id`); the brightness helpers take frame means computed from a video or
from still frames. `annotation_stats` gathers the calibrated annotation statistics in
the order `STATS` lists them.
"""
import collections
import dataclasses
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from mottr import schema

BOLT = 1
NUT = 2
# Overlap counts are reported per this many frames so that splits of any length compare.
REFERENCE_FRAMES = 1800


@dataclasses.dataclass(frozen=True)
class Stat:
  name: str
  description: str


# Calibrated statistics: compare_stats gates each of them at 10 % of the real value.
STATS = (
    Stat("acceleration", "fall acceleration, px/frame^2 (median over tracks)"),
    Stat("frames_in_view", "frames per track, first to last box (median)"),
    Stat("bolt_width", "bolt box width, fully visible, px (median)"),
    Stat("bolt_height", "bolt box height, fully visible, px (median)"),
    Stat("nut_width", "nut box width, fully visible, px (median)"),
    Stat("nut_height", "nut box height, fully visible, px (median)"),
    Stat("width_steady", "fraction of tracks whose fully visible box width varies <= 3 %"),
    Stat("height_variation", "per-track (max-min)/max of fully visible box height (median)"),
    Stat("objects_per_frame", "objects per frame between first and last box (mean)"),
    Stat("max_objects", "objects in one frame (max)"),
    Stat("arrival_gap", "frames between consecutive track starts (median)"),
    Stat("first_start", "first box frame / number of frames"),
    Stat("nut_fraction", "fraction of tracks that are nuts"),
    Stat("overlap_pairs", f"box pairs with IoU > 0 per {REFERENCE_FRAMES} frames"),
    Stat("max_nuts", "nuts in one frame (max)"),
    Stat("brightness_p5", "frame mean gray, 5th percentile"),
    Stat("brightness_p95", "frame mean gray, 95th percentile"),
)


@dataclasses.dataclass(frozen=True)
class Track:
  """One track: its frames (0-based, ascending) and COCO xywh boxes."""
  track_id: int
  category_id: int
  frames: np.ndarray  # (n,) int
  boxes: np.ndarray  # (n, 4) float, xywh


def _frame_size(coco: Mapping) -> tuple[int, int]:
  images = coco.get("images") or [{}]
  return (int(images[0].get("width", schema.WIDTH)),
          int(images[0].get("height", schema.HEIGHT)))


def tracks(coco: Mapping) -> list[Track]:
  """Groups the annotations by `track_id`, in ascending track id order."""
  grouped = collections.defaultdict(list)
  for ann in coco["annotations"]:
    grouped[ann["track_id"]].append(ann)
  out = []
  for track_id in sorted(grouped):
    anns = sorted(grouped[track_id], key=lambda a: a["image_id"])
    out.append(Track(
        track_id=track_id,
        category_id=anns[0]["category_id"],
        frames=np.array([a["image_id"] - 1 for a in anns], np.int64),
        boxes=np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)))
  return out


def fully_visible(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
  """True for xywh boxes that touch no edge of a width x height frame."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  return ((boxes[:, 0] > 0) & (boxes[:, 1] > 0) &
          (boxes[:, 0] + boxes[:, 2] < width) & (boxes[:, 1] + boxes[:, 3] < height))


def _visible_tracks(coco: Mapping, min_boxes: int) -> list[tuple[Track, np.ndarray]]:
  width, height = _frame_size(coco)
  out = []
  for track in tracks(coco):
    keep = fully_visible(track.boxes, width, height)
    if keep.sum() >= min_boxes:
      out.append((track, keep))
  return out


def acceleration(coco: Mapping, min_boxes: int = 5) -> float:
  """Median over tracks of 2x the quadratic coefficient of the box centre's y(frame).

  Only fully visible boxes are fitted; tracks with fewer than `min_boxes` are skipped.
  """
  values = []
  for track, keep in _visible_tracks(coco, min_boxes):
    boxes = track.boxes[keep]
    y_centre = boxes[:, 1] + boxes[:, 3] / 2
    values.append(2.0 * np.polyfit(track.frames[keep].astype(np.float64), y_centre, 2)[0])
  return float(np.median(values)) if values else float("nan")


def frames_in_view(coco: Mapping) -> float:
  """Median over tracks of last frame - first frame + 1."""
  lengths = [t.frames[-1] - t.frames[0] + 1 for t in tracks(coco)]
  return float(np.median(lengths)) if lengths else float("nan")


def box_sizes(coco: Mapping, category_id: int) -> tuple[float, float]:
  """Median width and height of the fully visible boxes of one category."""
  width, height = _frame_size(coco)
  boxes = np.array([a["bbox"] for a in coco["annotations"]
                    if a["category_id"] == category_id], np.float64).reshape(-1, 4)
  boxes = boxes[fully_visible(boxes, width, height)]
  if not len(boxes):
    return float("nan"), float("nan")
  return float(np.median(boxes[:, 2])), float(np.median(boxes[:, 3]))


def tumble_variation(coco: Mapping, min_boxes: int = 5, steady: float = 0.03
                     ) -> tuple[float, float]:
  """Objects tumble about the image x axis: box widths stay steady, heights change.

  Over tracks with `min_boxes` fully visible boxes, returns the fraction whose width
  varies by at most `steady` ((max - min) / max) and the median such variation of height.
  """
  widths, heights = [], []
  for track, keep in _visible_tracks(coco, min_boxes):
    w, h = track.boxes[keep, 2], track.boxes[keep, 3]
    widths.append((w.max() - w.min()) / w.max())
    heights.append((h.max() - h.min()) / h.max())
  if not widths:
    return float("nan"), float("nan")
  return float(np.mean(np.array(widths) <= steady)), float(np.median(heights))


def _per_frame(coco: Mapping) -> dict[int, list[Mapping]]:
  grouped = collections.defaultdict(list)
  for ann in coco["annotations"]:
    grouped[ann["image_id"]].append(ann)
  return grouped


def objects_per_frame(coco: Mapping) -> tuple[float, int]:
  """Mean objects per frame over frames between the first and last box, and the max."""
  counts = collections.Counter(a["image_id"] for a in coco["annotations"])
  if not counts:
    return 0.0, 0
  span = max(counts) - min(counts) + 1
  return sum(counts.values()) / span, max(counts.values())


def arrival_gap(coco: Mapping) -> float:
  """Median number of frames between consecutive track starts."""
  starts = np.sort([t.frames[0] for t in tracks(coco)])
  return float(np.median(np.diff(starts))) if len(starts) > 1 else float("nan")


def first_start(coco: Mapping) -> float:
  """Frame of the first box as a fraction of the number of frames."""
  frames = [a["image_id"] - 1 for a in coco["annotations"]]
  return min(frames) / max(len(coco["images"]), 1) if frames else float("nan")


def nut_fraction(coco: Mapping) -> float:
  """Fraction of the tracks that are nuts."""
  all_tracks = tracks(coco)
  if not all_tracks:
    return float("nan")
  return sum(t.category_id == NUT for t in all_tracks) / len(all_tracks)


def overlapping_pairs(coco: Mapping) -> int:
  """Number of (frame, box pair) with IoU > 0."""
  anns = sorted(coco["annotations"], key=lambda a: a["image_id"])
  if len(anns) < 2:
    return 0
  frames = np.array([a["image_id"] for a in anns])
  boxes = np.array([a["bbox"] for a in anns], np.float64)
  x0, y0 = boxes[:, 0], boxes[:, 1]
  x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
  total = 0
  for k in range(1, len(anns)):  # pair each box with the k-th next one of its frame
    same = frames[k:] == frames[:-k]
    if not same.any():
      break
    iw = np.minimum(x1[k:], x1[:-k]) - np.maximum(x0[k:], x0[:-k])
    ih = np.minimum(y1[k:], y1[:-k]) - np.maximum(y0[k:], y0[:-k])
    total += int(np.sum(same & (iw > 0) & (ih > 0)))
  return total


def max_at_once(coco: Mapping, category_id: int) -> int:
  """Most boxes of one category in a single frame."""
  counts = collections.Counter(a["image_id"] for a in coco["annotations"]
                               if a["category_id"] == category_id)
  return max(counts.values(), default=0)


def annotation_stats(coco: Mapping) -> dict[str, float]:
  """All calibrated statistics computable from annotations alone, keyed by `Stat.name`."""
  bolt_w, bolt_h = box_sizes(coco, BOLT)
  nut_w, nut_h = box_sizes(coco, NUT)
  width_steady, height_var = tumble_variation(coco)
  mean_objects, max_objects = objects_per_frame(coco)
  num_frames = max(len(coco["images"]), 1)
  return {
      "acceleration": acceleration(coco),
      "frames_in_view": frames_in_view(coco),
      "bolt_width": bolt_w,
      "bolt_height": bolt_h,
      "nut_width": nut_w,
      "nut_height": nut_h,
      "width_steady": width_steady,
      "height_variation": height_var,
      "objects_per_frame": mean_objects,
      "max_objects": float(max_objects),
      "arrival_gap": arrival_gap(coco),
      "first_start": first_start(coco),
      "nut_fraction": nut_fraction(coco),
      "overlap_pairs": overlapping_pairs(coco) * REFERENCE_FRAMES / num_frames,
      "max_nuts": float(max_at_once(coco, NUT)),
  }


def brightness_percentiles(frame_means: Sequence[float]) -> tuple[float, float]:
  """5th and 95th percentiles of per-frame mean gray levels."""
  p5, p95 = np.percentile(np.asarray(frame_means, np.float64), [5, 95])
  return float(p5), float(p95)


def brightness_stats(frame_means: Sequence[float]) -> dict[str, float]:
  p5, p95 = brightness_percentiles(frame_means)
  return {"brightness_p5": p5, "brightness_p95": p95}


def _mean_gray(frame_bgr: np.ndarray) -> float:
  return float(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY).mean())


def video_frame_means(path: str, stride: int = 1) -> np.ndarray:
  """Mean gray level of every `stride`-th frame of a video."""
  capture = cv2.VideoCapture(path)
  means = []
  index = 0
  try:
    while True:
      if index % stride:
        if not capture.grab():
          break
      else:
        ok, frame = capture.read()
        if not ok:
          break
        means.append(_mean_gray(frame))
      index += 1
  finally:
    capture.release()
  return np.array(means, np.float64)


def image_frame_means(paths: Iterable[str]) -> np.ndarray:
  """Mean gray level of each image file."""
  means = []
  for path in paths:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is not None:
      means.append(_mean_gray(image))
  return np.array(means, np.float64)
