"""Offline smoothing of a finished track's boxes: a local straight-line fit in time per box corner,
and one width per track (`steady_width`).

A box's four corners (x1, y1, x2, y2) become the value, at its own time, of the least-squares line
through the corners of the track's boxes within `half_window` of it. Among evenly spaced frames
this is the moving average over 2 x half_window + 1 frames; at a track's ends, where the window is
one-sided, the line follows the motion instead of lagging behind it, and a box moving at constant
velocity is left exactly where it is. Corners on the frame's edge (an object entering or leaving, clipped)
stay, and the fits of the other boxes leave them out. Under acceleration a the line is off by a x the mean
squared time offset in the window / 2 (half_window 3: 2a, 0.8 px for the scene's 0.41 px/frame² of gravity,
well below the noise it removes). The per-frame noise of the model's boxes (std 0.08-0.10 in
log w/h on the real val frames, docs/boxes.md) averages out; boxes with fewer than
MIN_NEIGHBOURS in their window (sparse sources: every 10th frame) keep their corners.
"""
import numpy as np

from mottr import boxes

MIN_NEIGHBOURS = 3  # boxes in a window (the box itself included) for a fit that is not the box
EDGE_EPS = 1e-6  # px: a corner this close to the frame's edge was clipped there
MIN_STEADY = 5  # boxes clear of the frame's edges for a track's one width (steady_width)


def smooth_boxes(times: np.ndarray, boxes_xywh: np.ndarray, half_window: float,
                 width: float, height: float, gravity: float = 0.0) -> np.ndarray:
  """The smoothed xywh boxes (float64 [N, 4]) of boxes at `times` (same units as half_window),
  clipped to the width x height frame. `gravity` (px per time unit squared, > 0: downwards) is
  taken out of the y corners before each fit, so a free fall is fitted without bias."""
  times = np.asarray(times, np.float64)
  boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
  corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
  limits = np.array([width, height, width, height], np.float64)
  # A corner on the frame's edge is where the clipping put it, not noise: it stays, and no fit uses it.
  free = (corners > EDGE_EPS) & (corners < limits - EDGE_EPS)
  out = corners.copy()
  for i, t in enumerate(times):
    near = np.abs(times - t) <= half_window + 1e-9
    for c in np.flatnonzero(free[i]):
      use = near & free[:, c]
      if use.sum() < MIN_NEIGHBOURS:
        continue
      dt = times[use] - t
      fall = 0.5 * gravity * dt ** 2 if c % 2 else 0.0
      design = np.stack([dt, np.ones(int(use.sum()))], axis=1)
      out[i, c] = np.linalg.lstsq(design, corners[use, c] - fall, rcond=None)[0][1]  # the line's value at t
  out = np.clip(out, 0.0, limits)
  return np.concatenate([out[:, :2], np.maximum(out[:, 2:] - out[:, :2], 0.0)], axis=1)


def steady_width(boxes_xywh: np.ndarray, band: float, width: float, height: float, edge_px: float) -> np.ndarray:
  """A track's xywh boxes with one width: an object tumbling about a horizontal axis keeps its box
  width (the truth's varies by 0.5 % along a track, the model's by 3-5 %). Every box clear of the
  frame's edges (by more than `edge_px`) whose log width lies within `band` of the median log width
  of those boxes takes that median width, about its centre; boxes further off (another object, a
  partial box) and edge boxes keep theirs. Fewer than MIN_STEADY boxes clear of the edges: unchanged."""
  b = np.array(boxes_xywh, np.float64).reshape(-1, 4)
  clear = np.logical_and(*boxes.clear_of_edges_xywh(b, width, height, edge_px)) & (b[:, 2] > 0)
  if clear.sum() < MIN_STEADY:
    return b
  median = np.median(b[clear, 2])
  take = clear & (np.abs(np.log(np.maximum(b[:, 2], 1e-9) / median)) <= band)
  b[take, 0] += (b[take, 2] - median) / 2
  b[take, 2] = median
  return b
