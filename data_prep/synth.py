r"""Calibrated synthetic look-alike of the Stroma challenge videos, in the challenge layout.

    python -m data_prep.synth --out_dir DIR [--seed N] [--splits train,val,test] \
        [--num_frames N] [--backgrounds DIR] [--empty_segmentation]

writes `DIR/annotations/instances_{split}.json` and `DIR/images/{split}/{split}.mp4`.
Bolts, lag screws and hex nuts (3D meshes, `data_prep.render`) drop from rest above the
frame in four lanes, fall with constant acceleration while tumbling about the image x
axis, and leave through the bottom edge, in front of a blurred industrial hall that pans
slowly while its brightness drifts. The constants below are measured on the real data or
calibrated against it (`data_prep.scene_stats`, `scripts/bench/compare_stats.py`); each video
keeps the first of several random plans whose statistics match. Boxes and RLE masks are
the visible (unoccluded, in-frame) part of each rendered object.
"""
import collections
import dataclasses
import functools
import os
import time
from typing import Sequence

from absl import app
from absl import flags
import cv2
import numpy as np
from pycocotools import mask as mask_utils
from scipy import stats as scipy_stats

from data_prep import render
from data_prep import scene_stats
from mottr import schema
from mottr.schema import UserError, run_cli

DEFAULT_FRAMES = {"train": 7200, "val": 1800, "test": 1800}

# Motion (px, frames), measured on the real val annotations.
ACCELERATION = 0.4125  # px/frame^2
ACCELERATION_STD = 0.009
REST_Y = -72.0  # object centre at rest, above the top edge
REST_Y_STD = 9.0
LANES = (108.5, 245.0, 397.0, 553.5)  # box centre x of the four drop points
LANE_WEIGHTS = (376, 486, 442, 422)
LANE_STD = 5.0
DRIFT = -0.07  # px/frame horizontal
DRIFT_STD = 0.05
TUMBLE_MAX = np.deg2rad(3.0)  # rad/frame about the image x axis
# Per-track (max - min) / max of fully visible box heights: quantiles measured on the real
# val tracks. Each object's tumbling speed is chosen to give a stratified draw of it.
HEIGHT_VARIATION_Q = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
HEIGHT_VARIATION = (0.0, 0.021, 0.061, 0.122, 0.219, 0.36, 0.45)
TILT_MAX = np.deg2rad(85.0)  # bolt axis out of the image plane at rest
TILT_POWER = 0.6
ACROSS_MAX = 0.95  # largest |x| component of a bolt's axis
ACROSS_POWER = 0.95
NUT_SIDE = np.deg2rad(25.0)
NUT_SIDEWAYS = 0.2
NUT_FLANK = (np.deg2rad(62.0), np.deg2rad(80.0))
NUT_TILT = np.deg2rad(78.0)
# Annotation: an object gets a box once this many rows of it are inside the frame.
MIN_VISIBLE = 22
MIN_VISIBLE_FRACTION = 0.25  # of its in-frame pixels; less (occluded) -> no box
# Arrivals: gamma-distributed gaps (median ~15), first box at 5.5 % of the video, none in
# the last ~2 % of it, <= 5 objects and <= 1 nut in view.
GAP_SHAPE = 2.0
GAP_SCALE = 8.75
FIRST_BOX = 0.055
TAIL = 35.0 / 1800.0
MAX_OBJECTS = 5
MIN_BOX_SIDE = 28  # px: no real box, fully visible, is thinner
COUNT_MARGIN = 4.0  # px: rendering may box an object a little earlier than its plan
NUT_FRACTION = 0.209
MOTION_BLUR = 0.25  # fraction of a frame's travel smeared
# Objects are lit by the same drifting light as the hall, but less strongly:
# gain = clip((frame target mean / reference) ** 0.5, *range).
OBJECT_LIGHT_REFERENCE = 70.0
OBJECT_LIGHT_RANGE = (0.6, 1.25)
# An object's mask holds the pixels it covers by at least half, before motion blur: that
# keeps box heights off the blur streak and box widths as steady as the real ones.
MASK_ALPHA = 127.5
# Plans are drawn until one matches these statistics (scene_stats names) within the given
# relative tolerances; videos shorter than MIN_SELECT_FRAMES take the first plan. They are
# the real values, except where rendering shifts a statistic from its plan: nut boxes come
# out ~1 px larger, height variation ~5 % smaller (whole-pixel masks).
PLAN_TARGETS = {
    "frames_in_view": (43.0, 0.05), "bolt_width": (73.0, 0.05), "bolt_height": (77.0, 0.05),
    "nut_width": (44.0, 0.05), "nut_height": (42.0, 0.05), "height_variation": (0.128, 0.05),
    "objects_per_frame": (2.41, 0.04), "max_objects": (5.0, 0.01),
    "arrival_gap": (15.0, 0.07), "nut_fraction": (0.209, 0.05), "overlap_pairs": (89.0, 0.05),
    "max_nuts": (1.0, 0.01),
}
OVERLAP_TOLERANCE = 0.04
# Occlusion trims the farther object's visible box, so rendered videos hold fewer
# overlapping box pairs than their plans: lanes are tuned aiming this much higher first,
# then re-aimed from the rendered count, at most OVERLAP_ROUNDS times.
OVERLAP_PLAN_FACTOR = 1.1
OVERLAP_ROUNDS = 4
PLAN_CANDIDATES = 40
MIN_SELECT_FRAMES = 900

# Backgrounds.
PAN_SPEED = 0.5  # px/frame
CANVAS_SCALE = (2.2, 1.4)  # canvas size / frame size
BRIGHTNESS_P5 = 28.7  # frame mean gray, pooled real train + val frames
BRIGHTNESS_P95 = 99.4
# The mp4v round trip through OpenCV darkens frames by about this many gray levels; the
# backgrounds are rendered that much brighter so that decoded frames hit their targets.
CODEC_DARKENING = 1.7
# Frames darker than DARK_GAMMA_FROM get a contrast curve up to gamma 1 + DARK_GAMMA.
DARK_GAMMA_FROM = 70.0
DARK_GAMMA = 0.8
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
_ORANGE = np.array([34, 84, 150], np.float64)  # BGR, painted steel
HALL_TINT = np.array([0.93, 1.0, 0.99])  # BGR: the real hall's greys are slightly warm

INFO = {
    "description": "mottr synthetic nuts and bolts",
    "url": "",
    "version": "1.0",
    "year": 2025,
    "contributor": "mottr data_prep.synth",
    "date_created": "2025/01/01",
}


# ----------------------------------------------------------------------------- backgrounds

def _jitter(rng: np.random.Generator, color, amount: float = 0.1) -> tuple[float, ...]:
  return tuple(float(c) for c in np.clip(np.asarray(color, np.float64)
                                         * rng.uniform(1 - amount, 1 + amount), 0, 255))


def _far_layer(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
  """Back wall: corrugated panels, windows, orange X-bracing, steel columns and beams."""
  img = np.empty((h, w, 3), np.float64)
  img[:] = np.interp(np.arange(h), [0, 0.3 * h, 0.75 * h, h], [34, 50, 56, 40])[:, None, None]
  top, bottom = int(rng.uniform(0.12, 0.22) * h), int(rng.uniform(0.72, 0.85) * h)
  columns = []
  x = 0
  while x < w:
    x1 = min(x + int(rng.uniform(0.13, 0.24) * w), w)
    kind = rng.choice(["panel", "panel", "panel", "dark", "window"])
    if kind == "panel":
      rows = np.arange(top, bottom)
      stripes = rng.uniform(115, 160) + 22 * np.sin(2 * np.pi * rows / rng.uniform(4.0, 6.0))
      img[top:bottom, x:x1] = stripes[:, None, None]
    elif kind == "window":
      img[top:bottom, x:x1] = rng.uniform(70, 100)
      wy0 = top + int(0.08 * (bottom - top))
      wy1 = top + int(rng.uniform(0.35, 0.7) * (bottom - top))
      cv2.rectangle(img, (x + 4, wy0), (x1 - 4, wy1), _jitter(rng, (238, 240, 242), 0.05), -1)
    else:
      img[top:bottom, x:x1] = rng.uniform(22, 40)
    if kind != "window" and rng.random() < 0.6:
      thick = max(2, int(0.008 * w))
      color = _jitter(rng, _ORANGE, 0.15)
      cv2.line(img, (x, top), (x1, bottom), color, thick, cv2.LINE_AA)
      cv2.line(img, (x1, top), (x, bottom), color, thick, cv2.LINE_AA)
    columns.append(x)
    x = x1
  for y in (top, bottom):
    band = max(3, int(rng.uniform(0.015, 0.03) * h))
    cv2.rectangle(img, (0, y - band), (w, y + band), _jitter(rng, (76, 78, 78)), -1)
    cv2.line(img, (0, y - band), (w, y - band), _jitter(rng, (120, 122, 122)), 1)
  for cx in columns:
    half = max(3, int(rng.uniform(0.008, 0.016) * w))
    color = _jitter(rng, _ORANGE * 0.9 if rng.random() < 0.25 else (62, 63, 64))
    cv2.rectangle(img, (cx - half, 0), (cx + half, h), color, -1)
    edge = _jitter(rng, np.asarray(color) * 1.5)
    cv2.line(img, (cx - half, 0), (cx - half, h), edge, 1)
    cv2.line(img, (cx + half, 0), (cx + half, h), edge, 1)
  return img


def _near_layer(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
  """Concrete pillars, a painted column, a pipe and a cross beam close to the camera."""
  img = np.zeros((h, w, 3), np.float64)
  mask = np.zeros((h, w), np.float64)
  for cx in np.sort(rng.uniform(0, w, max(2, int(w / 260)))):
    half = int(rng.uniform(0.04, 0.08) * w)
    x0, x1 = int(cx) - half, int(cx) + half
    shade = np.linspace(1.08, 0.82, x1 - x0)
    block = rng.uniform(120, 165) * np.interp(np.arange(h), [0, h], [0.95, 1.05])[:, None] * shade
    lo, hi = max(x0, 0), min(x1, w)
    img[:, lo:hi] = block[:, lo - x0:hi - x0, None]
    mask[:, lo:hi] = 1.0
  if rng.random() < 0.8:
    cx, half = int(rng.uniform(0, w)), int(rng.uniform(0.02, 0.04) * w)
    cv2.rectangle(img, (cx - half, 0), (cx + half, h), _jitter(rng, _ORANGE * 0.85), -1)
    cv2.rectangle(mask, (cx - half, 0), (cx + half, h), 1.0, -1)
  if rng.random() < 0.7:
    px, py = int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.6, 0.85) * h)
    pts = np.array([[px, 0], [px, py], [px + int(rng.uniform(0.15, 0.35) * w), py]], np.int32)
    thick = max(4, int(0.012 * w))
    cv2.polylines(img, [pts], False, _jitter(rng, (45, 45, 48)), thick, cv2.LINE_AA)
    cv2.polylines(mask, [pts], False, 1.0, thick, cv2.LINE_AA)
  if rng.random() < 0.5:
    y, x0 = int(rng.uniform(0.3, 0.6) * h), int(rng.uniform(0.2, 0.6) * w)
    thick = int(rng.uniform(0.05, 0.1) * h)
    cv2.rectangle(img, (x0, y), (w, y + thick), _jitter(rng, (188, 190, 190)), -1)
    cv2.rectangle(img, (x0, y + thick), (w, y + int(1.4 * thick)), _jitter(rng, (40, 40, 42)), -1)
    cv2.rectangle(mask, (x0, y), (w, y + int(1.4 * thick)), 1.0, -1)
  return img, mask


def procedural_hall(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
  """A dim industrial hall with strong depth-of-field blur: uint8 BGR, height x width."""
  w, h = width // 2, height // 2  # drawn at half resolution, blurred, upsampled
  far = cv2.GaussianBlur(_far_layer(rng, w, h), (0, 0), rng.uniform(1.0, 1.8))
  near, mask = _near_layer(rng, w, h)
  sigma = rng.uniform(3.0, 5.0)
  near = cv2.GaussianBlur(near, (0, 0), sigma)
  mask = cv2.GaussianBlur(mask, (0, 0), sigma)[:, :, None]
  blotches = cv2.resize(rng.uniform(0.88, 1.12, (max(h // 40, 2), max(w // 40, 2))), (w, h),
                        interpolation=cv2.INTER_CUBIC)
  img = (far * (1 - mask) + near) * blotches[:, :, None] * HALL_TINT
  return cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (width, height),
                    interpolation=cv2.INTER_LINEAR)


def background_image(rng: np.random.Generator, directory: str, width: int, height: int
                     ) -> np.ndarray:
  """A random image from `directory`, scaled to cover width x height and centre-cropped."""
  if not os.path.isdir(directory):
    raise UserError(f"{directory}: backgrounds folder not found; pass an existing folder")
  names = sorted(n for n in os.listdir(directory) if n.lower().endswith(IMAGE_EXTENSIONS))
  if not names:
    raise UserError(f"{directory}: holds no {'/'.join(IMAGE_EXTENSIONS)} images; "
                    "add empty background images")
  path = os.path.join(directory, names[int(rng.integers(len(names)))])
  image = cv2.imread(path, cv2.IMREAD_COLOR)
  if image is None:
    raise UserError(f"{path}: cannot be read as an image; remove or replace it")
  scale = max(width / image.shape[1], height / image.shape[0])
  size = (max(width, int(np.ceil(image.shape[1] * scale))),
          max(height, int(np.ceil(image.shape[0] * scale))))
  image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else
                     cv2.INTER_LINEAR)
  y0, x0 = (size[1] - height) // 2, (size[0] - width) // 2
  return np.ascontiguousarray(image[y0:y0 + height, x0:x0 + width])


def pan_path(rng: np.random.Generator, num_frames: int, range_x: int, range_y: int
             ) -> np.ndarray:
  """(num_frames, 2) integer crop offsets moving PAN_SPEED px/frame, bouncing at the ends."""
  t = np.arange(num_frames, dtype=np.float64)
  heading = rng.uniform(-0.35, 0.35) + np.pi * rng.integers(2)
  angle = heading + 0.25 * np.sin(2 * np.pi * t / rng.uniform(600, 1500)
                                  + rng.uniform(0, 2 * np.pi))
  raw = (rng.uniform([0, 0], [range_x, range_y])
         + np.cumsum(PAN_SPEED * np.stack([np.cos(angle), np.sin(angle)], 1), 0))
  limits = np.array([max(range_x, 1e-9), max(range_y, 1e-9)])
  folded = np.mod(raw, 2 * limits)
  folded = np.where(folded > limits, 2 * limits - folded, folded)
  return np.minimum(folded.round(), [range_x, range_y]).astype(np.int64)


def brightness_curve(rng: np.random.Generator, num_frames: int) -> np.ndarray:
  """Target frame mean gray per frame: a slow drift spanning the real 5th-95th range."""
  t = np.linspace(0.0, 1.0, num_frames)
  curve = rng.uniform(-1, 1) * t
  for k in range(1, 4):
    curve = curve + rng.normal(0, 1.0 / k) * np.sin(np.pi * k * t + rng.uniform(0, 2 * np.pi))
  lo, hi = np.percentile(curve, [5, 95])
  if hi - lo < 1e-6:
    curve, lo, hi = t, 0.05, 0.95
  out = BRIGHTNESS_P5 + (curve - lo) * (BRIGHTNESS_P95 - BRIGHTNESS_P5) / (hi - lo)
  return np.clip(out, 0.8 * BRIGHTNESS_P5, 1.06 * BRIGHTNESS_P95)


class Background:
  """Frames cropped from a larger canvas along a pan path, scaled to a target mean gray."""

  def __init__(self, canvas: np.ndarray, offsets: np.ndarray, targets: np.ndarray):
    self.canvas = canvas
    self.gray = cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY)
    self.offsets = offsets
    self.targets = targets
    self._levels = np.arange(256, dtype=np.float64)

  def levels(self, index: int) -> np.ndarray:
    """The 256-entry tone curve of frame `index`: a contrast curve (deeper shadows in dark
    frames, like the real ones) scaled so the decoded frame's mean gray hits its target,
    allowing for the levels it pushes past 255."""
    dark = np.clip((DARK_GAMMA_FROM - self.targets[index]) / DARK_GAMMA_FROM, 0.0, 1.0)
    curve = 255.0 * (self._levels / 255.0) ** (1.0 + DARK_GAMMA * dark)
    x, y = self.offsets[index]
    crop = self.gray[y:y + schema.HEIGHT, x:x + schema.WIDTH]
    hist = cv2.calcHist([crop], [0], None, [256], [0, 256]).reshape(-1).astype(np.float64)
    hist /= hist.sum()
    target = min(self.targets[index] + CODEC_DARKENING, 250.0)
    lo, hi = 0.0, 4 * 255.0 / max(curve @ hist, 1.0)
    for _ in range(30):
      mid = (lo + hi) / 2
      if np.minimum(curve * mid, 255.0) @ hist < target:
        lo = mid
      else:
        hi = mid
    return curve * (lo + hi) / 2

  def frame(self, index: int) -> np.ndarray:
    x, y = self.offsets[index]
    crop = self.canvas[y:y + schema.HEIGHT, x:x + schema.WIDTH]
    return cv2.LUT(crop, np.clip(self.levels(index) + 0.5, 0, 255).astype(np.uint8))


def make_background(rng: np.random.Generator, num_frames: int,
                    backgrounds_dir: str | None = None) -> Background:
  cw = int(schema.WIDTH * CANVAS_SCALE[0])
  ch = int(schema.HEIGHT * CANVAS_SCALE[1])
  if backgrounds_dir:
    canvas = background_image(rng, backgrounds_dir, cw, ch)
  else:
    canvas = procedural_hall(rng, cw, ch)
  offsets = pan_path(rng, num_frames, cw - schema.WIDTH, ch - schema.HEIGHT)
  return Background(canvas, offsets, brightness_curve(rng, num_frames))


# ----------------------------------------------------------------------------- objects

class _Stratified:
  """Uniform [0, 1) numbers stratified in shuffled blocks, so short runs cover the range."""

  def __init__(self, rng: np.random.Generator, block: int = 12):
    self.rng, self.block, self.queue = rng, block, []

  def __call__(self) -> float:
    if not self.queue:
      self.queue = list((self.rng.permutation(self.block) + self.rng.random(self.block))
                        / self.block)
    return float(self.queue.pop())


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
  names = list(weights)
  p = np.array([weights[n] for n in names], np.float64)
  return names[int(rng.choice(len(names), p=p / p.sum()))]


# Bolt kinds: (shank length range px, length/diameter range, head kinds, thread fraction,
# lag-screw tip, shank materials, weight). LENGTH_SCALE scales every length (calibration).
LENGTH_SCALE = 1.01
BOLT_KINDS = {
    "long": ((125, 185), (8, 10), ("hex", "round"), (0.3, 0.6), False,
             {"copper": 0.45, "rust": 0.25, "steel": 0.3}, 0.3),
    "hex": ((65, 115), (4.0, 5.5), ("hex",), (0.4, 1.0), False,
            {"steel": 0.4, "dark_steel": 0.35, "zinc": 0.25}, 0.3),
    "lag": ((85, 150), (6, 8), ("hex",), (0.7, 0.9), True,
            {"dark_steel": 0.4, "steel": 0.35, "rust": 0.25}, 0.2),
    "short": ((45, 70), (2.3, 3.0), ("hex", "round"), (0.6, 1.0), False,
              {"steel": 0.4, "zinc": 0.3, "copper": 0.3}, 0.2),
}


def _material(rng: np.random.Generator, name: str) -> render.Material:
  base = render.MATERIALS[name]
  color = np.clip(np.asarray(base.color) * rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3),
                  0, 255)
  return dataclasses.replace(base, color=tuple(float(c) for c in color))


@dataclasses.dataclass(frozen=True)
class BoltShape:
  length: float
  diameter: float
  head: str
  thread_fraction: float
  head_material: render.Material
  shank_material: render.Material
  tip: bool

  def mesh(self, detailed: bool = True) -> render.Mesh:
    return render.hex_bolt(self.length, self.diameter, self.head, self.thread_fraction,
                           self.head_material, self.shank_material, tip=self.tip,
                           threads=detailed)


@dataclasses.dataclass(frozen=True)
class NutShape:
  across_flats: float
  thickness: float
  hole: float
  material: render.Material

  def mesh(self, detailed: bool = True) -> render.Mesh:
    del detailed  # a nut is always cheap
    return render.hex_nut(self.across_flats, self.thickness, self.hole, self.material)


def make_bolt(rng: np.random.Generator, kind_q: float, size_q: float) -> BoltShape:
  """A random bolt; `kind_q` in [0, 1) picks its kind by weight, `size_q` the quantile of
  its length within the kind."""
  weights = np.array([v[-1] for v in BOLT_KINDS.values()], np.float64)
  kind = list(BOLT_KINDS)[int(np.searchsorted(np.cumsum(weights) / weights.sum(), kind_q,
                                              side="right"))]
  lengths, ratio, heads, thread, tip, materials, _ = BOLT_KINDS[kind]
  length = LENGTH_SCALE * (lengths[0] + size_q * (lengths[1] - lengths[0]))
  diameter = length / rng.uniform(*ratio)
  shank = _material(rng, _pick(rng, materials))
  head = shank if rng.random() < 0.6 else _material(rng, "steel")
  return BoltShape(length, diameter, str(rng.choice(heads)), float(rng.uniform(*thread)),
                   head, shank, tip)


def make_nut(rng: np.random.Generator, size_q: float) -> NutShape:
  across = 35.0 + 4.0 * size_q
  return NutShape(across, across * rng.uniform(0.5, 0.6), across * rng.uniform(0.55, 0.62),
                  _material(rng, "nut_bright"))


@dataclasses.dataclass
class FallingObject:
  """One object's shape and motion; frame times are float frame indices."""
  category_id: int
  shape: BoltShape | NutShape
  lane: int  # index into LANES
  x: float  # centre x at rest
  vx: float
  y_rest: float
  t_rest: float
  accel: float
  rot0: np.ndarray
  omega: float  # tumbling, rad/frame about the image x axis
  depth: float  # larger is farther; nearer objects are drawn on top
  first: int = 0  # first and last frame where some of it is inside the frame
  last: int = -1
  boxes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4)))

  @functools.cached_property
  def outline(self) -> np.ndarray:
    """Vertices of a coarse mesh with the same projected extents."""
    return self.shape.mesh(detailed=False).vertices

  @functools.cached_property
  def mesh(self) -> render.Mesh:
    return self.shape.mesh()

  def centres(self, t: np.ndarray) -> np.ndarray:
    dt = np.maximum(np.asarray(t, np.float64) - self.t_rest, 0.0)
    return np.stack([self.x + self.vx * dt, self.y_rest + 0.5 * self.accel * dt * dt], -1)

  def rotations(self, t: np.ndarray) -> np.ndarray:
    return render.rotations_x(self.omega * (np.asarray(t, np.float64) - self.t_rest)) @ self.rot0

  def speed(self, t: float) -> float:
    return self.accel * max(t - self.t_rest, 0.0)

  def locate(self) -> None:
    """Sets first/last frame in view and the unclipped projected boxes (x0, y0, x1, y1)."""
    start = int(np.ceil(self.t_rest))
    radius = np.linalg.norm(self.outline, axis=1).max()
    fall = np.sqrt(2 * (schema.HEIGHT - self.y_rest + radius) / self.accel)
    t = np.arange(start, int(self.t_rest + fall) + 2, dtype=np.float64)
    boxes = render.extents(self.outline, self.rotations(t)) + np.tile(self.centres(t), 2)
    inside = np.flatnonzero((boxes[:, 3] > 0) & (boxes[:, 1] < schema.HEIGHT))
    self.first, self.last = start + int(inside[0]), start + int(inside[-1])
    self.boxes = boxes[inside[0]:inside[-1] + 1]

  def annotated_frames(self, margin: float = 0.0) -> np.ndarray:
    """Frames where the plan expects a box: >= MIN_VISIBLE - margin rows inside the frame."""
    rows = np.minimum(self.boxes[:, 3], schema.HEIGHT) - np.maximum(self.boxes[:, 1], 0)
    return self.first + np.flatnonzero(rows >= MIN_VISIBLE - margin)


def _orientation(rng: np.random.Generator, across_q: float, tilt_q: float) -> np.ndarray:
  """Rotation whose local z axis has |x| = ACROSS_MAX * across_q ** ACROSS_POWER, leans
  tilt_q ** TILT_POWER * TILT_MAX out of the image plane, and is rolled at random about
  itself (the quantiles are stratified)."""
  ux = ACROSS_MAX * across_q ** ACROSS_POWER * rng.choice([-1.0, 1.0])
  tilt = tilt_q ** TILT_POWER * TILT_MAX * rng.choice([-1.0, 1.0]) + np.pi * rng.integers(2)
  r = np.sqrt(max(1 - ux * ux, 0.0))
  return render.rotation_from_axis(np.array([ux, r * np.cos(tilt), r * np.sin(tilt)]),
                                   rng.uniform(0, 2 * np.pi))


def _nut_orientation(rng: np.random.Generator) -> np.ndarray:
  """A nut mostly faces the camera, its hole axis leaning sideways by at most NUT_SIDE;
  NUT_SIDEWAYS of them show their flank instead (axis NUT_FLANK from the camera axis).
  The axis also leans up or down by at most NUT_TILT."""
  if rng.random() < NUT_SIDEWAYS:
    side = rng.uniform(*NUT_FLANK)
  else:
    side = rng.uniform(0.0, NUT_SIDE)
  side *= rng.choice([-1.0, 1.0])
  tilt = rng.uniform(-NUT_TILT, NUT_TILT)
  axis = np.array([np.sin(side), np.cos(side) * np.sin(tilt), np.cos(side) * np.cos(tilt)])
  return render.rotation_from_axis(axis, rng.uniform(0, 2 * np.pi))


def _fit_tumble(obj: "FallingObject", variation: float, sign: float) -> float:
  """The tumbling speed (rad/frame, up to TUMBLE_MAX) whose fully visible box heights vary
  by closest to `variation` over the object's fall."""
  omegas = sign * np.linspace(0.0, TUMBLE_MAX, 16)
  t = np.arange(10.0, 80.0)
  rotations = render.rotations_x(omegas[:, None] * t[None]) @ obj.rot0
  boxes = render.extents(obj.outline, rotations.reshape(-1, 3, 3)).reshape(
      len(omegas), len(t), 4)
  centre = np.array([obj.x + obj.vx * t, obj.y_rest + 0.5 * obj.accel * t * t]).T
  boxes = boxes + np.tile(centre, 2)[None]
  inside = ((boxes[..., 0] > 0) & (boxes[..., 1] > 0) & (boxes[..., 2] < schema.WIDTH)
            & (boxes[..., 3] < schema.HEIGHT))
  heights = boxes[..., 3] - boxes[..., 1]
  top = np.where(inside, heights, -np.inf).max(1)
  bottom = np.where(inside, heights, np.inf).min(1)
  achieved = np.where(inside.any(1), (top - bottom) / np.maximum(top, 1e-9), np.inf)
  if not np.isfinite(achieved).any():
    return float(omegas[len(omegas) // 4])
  return float(omegas[int(np.argmin(np.abs(achieved - variation)))])


class _Draws:
  """The stratified streams a plan draws its objects' attributes from."""

  def __init__(self, rng: np.random.Generator):
    self.rng = rng
    self.gap, self.kind, self.size = _Stratified(rng), _Stratified(rng, 10), _Stratified(rng)
    self.across, self.tilt, self.tumble = _Stratified(rng), _Stratified(rng), _Stratified(rng)
    self.nut_size = _Stratified(rng, 6)


def _new_object(draws: _Draws, category: int) -> FallingObject:
  """A random object of `category` at rest at frame 0, whose box is never thinner than
  MIN_BOX_SIDE while it falls."""
  rng = draws.rng
  lane_p = np.array(LANE_WEIGHTS, np.float64) / sum(LANE_WEIGHTS)
  while True:
    if category == 2:
      shape, rot0 = make_nut(rng, draws.nut_size()), _nut_orientation(rng)
    else:
      shape = make_bolt(rng, draws.kind(), draws.size())
      rot0 = _orientation(rng, draws.across(), draws.tilt())
    lane = int(rng.choice(len(LANES), p=lane_p))
    obj = FallingObject(
        category_id=category, shape=shape, lane=lane,
        x=float(LANES[lane] + rng.normal(0, LANE_STD)),
        vx=float(rng.normal(DRIFT, DRIFT_STD)),
        y_rest=float(np.clip(rng.normal(REST_Y, REST_Y_STD), REST_Y - 20, REST_Y + 20)),
        t_rest=0.0,
        accel=float(np.clip(rng.normal(ACCELERATION, ACCELERATION_STD), 0.385, 0.44)),
        rot0=rot0, omega=0.0, depth=float(rng.random()))
    variation = float(np.interp(draws.tumble(), HEIGHT_VARIATION_Q, HEIGHT_VARIATION))
    obj.omega = _fit_tumble(obj, variation, float(rng.choice([-1.0, 1.0])))
    obj.locate()
    sides = obj.boxes[:, 2:] - obj.boxes[:, :2]
    if sides.min() >= MIN_BOX_SIDE and len(obj.annotated_frames()):
      return obj


def plan_scene(rng: np.random.Generator, num_frames: int) -> list[FallingObject]:
  """Arrival times, lanes, shapes and motions of every object of a video."""
  draws = _Draws(rng)
  last_allowed = num_frames - 1 - int(round(TAIL * num_frames))
  counts = np.zeros(num_frames + 400, np.int64)
  nut_busy = np.zeros(num_frames + 400, bool)
  objects: list[FallingObject] = []
  nut_credit = rng.uniform(0.0, 1.0)
  t_rest = None
  while True:
    nut_credit += NUT_FRACTION
    gap = float(scipy_stats.gamma.ppf(draws.gap(), GAP_SHAPE, scale=GAP_SCALE))
    for category in ((2, 1) if nut_credit >= 1.0 else (1,)):
      obj = _new_object(draws, category)
      if t_rest is None:  # the first object's first box lands on FIRST_BOX
        obj.t_rest = FIRST_BOX * num_frames - obj.annotated_frames()[0] + float(rng.random())
      else:
        obj.t_rest = t_rest + gap
      obj.locate()
      if category == 1 or not nut_busy[max(obj.first, 0):obj.last + 1].any():
        break
    while True:  # delay the arrival while the frame would hold too many objects
      frames = obj.annotated_frames(margin=COUNT_MARGIN)
      frames = frames[frames >= 0]
      if not len(frames) or counts[frames].max() < MAX_OBJECTS:
        break
      obj.t_rest += 1.0
      obj.locate()
    t_rest = obj.t_rest
    if obj.last > last_allowed:
      return objects
    if obj.category_id == 2:
      nut_credit -= 1.0
      nut_busy[max(obj.first, 0):obj.last + 1] = True
    counts[frames] += 1
    objects.append(obj)


def _overlap_frames(a: FallingObject, b: FallingObject, dx: float = 0.0,
                    margin: float = 0.0) -> np.ndarray:
  """Frames where the planned boxes of a (shifted by dx) and b intersect (grown by margin)."""
  frames = np.intersect1d(a.annotated_frames(), b.annotated_frames())
  if not len(frames):
    return frames
  ba, bb = a.boxes[frames - a.first], b.boxes[frames - b.first]
  iw = np.minimum(ba[:, 2] + dx, bb[:, 2]) - np.maximum(ba[:, 0] + dx, bb[:, 0])
  ih = np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1])
  return frames[(iw > -margin) & (ih > -margin)]


def _neighbours(objects: Sequence[FallingObject]) -> list[list[int]]:
  """For each object, the others in view at the same time."""
  return [[j for j, other in enumerate(objects) if j != i and other.last >= obj.first
           and obj.last >= other.first] for i, obj in enumerate(objects)]


def tune_overlaps(rng: np.random.Generator, objects: list[FallingObject], target: float,
                  tolerance: float, max_moves: int = 300) -> None:
  """Moves objects between lanes until the planned overlapping box pairs are within
  `tolerance` (relative) of `target`: a lane change only shifts an object sideways."""
  n = len(objects)
  if n < 2:
    return
  neighbours = _neighbours(objects)
  overlap = {}
  for i in range(n):
    for j in neighbours[i]:
      if i < j:
        overlap[i, j] = len(_overlap_frames(objects[i], objects[j]))
  total = sum(overlap.values())

  def gain_of(i: int, lane: int) -> tuple[int, dict]:
    obj = objects[i]
    dx = LANES[lane] - LANES[obj.lane]
    new = {(min(i, j), max(i, j)): len(_overlap_frames(obj, objects[j], dx))
           for j in neighbours[i]}
    return sum(new.values()) - sum(overlap[k] for k in new), new

  for _ in range(max_moves):
    if abs(total - target) <= tolerance * target:
      return
    i = int(rng.integers(n))
    options = [lane for lane in range(len(LANES)) if lane != objects[i].lane]
    lane = options[int(rng.integers(len(options)))]
    delta, new = gain_of(i, lane)
    if delta == 0 or abs(total + delta - target) >= abs(total - target):
      continue
    dx = LANES[lane] - LANES[objects[i].lane]
    objects[i].lane, objects[i].x = lane, objects[i].x + dx
    objects[i].boxes = objects[i].boxes + np.array([dx, 0.0, dx, 0.0])
    overlap.update(new)
    total += delta


def plan_coco(objects: Sequence[FallingObject], num_frames: int) -> dict:
  """The boxes a plan implies (projected, clipped, occlusion ignored), as a COCO dict."""
  anns = []
  limits = np.array([schema.WIDTH, schema.HEIGHT] * 2, np.float64)
  for track_id, obj in enumerate(objects, 1):
    frames = obj.annotated_frames()
    frames = frames[(frames >= 0) & (frames < num_frames)]
    boxes = np.clip(np.round(obj.boxes[frames - obj.first]), 0, limits)
    boxes[:, 2:] -= boxes[:, :2]
    for frame, box in zip(frames.tolist(), boxes.tolist()):
      anns.append({"image_id": frame + 1, "category_id": obj.category_id, "bbox": box,
                   "track_id": track_id})
  images = [{"id": i + 1, "width": schema.WIDTH, "height": schema.HEIGHT}
            for i in range(num_frames)]
  return {"images": images, "annotations": anns}


def rendered_overlaps(objects: Sequence[FallingObject], num_frames: int) -> int:
  """The overlapping box pairs the rendered video will hold: renders (masks only) the
  frames where planned boxes meet, since occlusion trims the farther object's box."""
  involved = collections.defaultdict(set)
  neighbours = _neighbours(objects)
  for i, obj in enumerate(objects):
    for j in neighbours[i]:
      if i < j:
        for frame in _overlap_frames(obj, objects[j], margin=2.0).tolist():
          involved[frame].update((i, j))
  scratch = np.zeros((schema.HEIGHT, schema.WIDTH, 3), np.uint8)
  total = 0
  for frame, members in involved.items():
    if 0 <= frame < num_frames:
      boxes = [_box(visible) for _, visible in
               annotate_frame(scratch, [objects[k] for k in members], frame, 1.0)]
      total += scene_stats.overlapping_pairs(
          {"annotations": [{"image_id": 0, "bbox": b} for b in boxes]})
  return total


def plan_errors(objects: Sequence[FallingObject], num_frames: int,
                overlaps: int | None = None) -> dict[str, float]:
  """Deviations of a plan's statistics from PLAN_TARGETS, in units of their tolerances;
  the overlap count is `overlaps` (rendered) if given, else left out."""
  measured = scene_stats.annotation_stats(plan_coco(objects, num_frames))
  if overlaps is None:
    del measured["overlap_pairs"]
  else:
    measured["overlap_pairs"] = overlaps * scene_stats.REFERENCE_FRAMES / num_frames
  return {k: float(np.nan_to_num(abs(measured[k] - v) / (v * tol), nan=np.inf))
          for k, (v, tol) in PLAN_TARGETS.items() if k in measured}


def fit_overlaps(rng: np.random.Generator, objects: list[FallingObject],
                 num_frames: int) -> int:
  """Tunes lanes until the rendered overlap count is near its target; returns it."""
  target = PLAN_TARGETS["overlap_pairs"][0] * num_frames / scene_stats.REFERENCE_FRAMES
  aim = target * OVERLAP_PLAN_FACTOR
  for _ in range(OVERLAP_ROUNDS):
    tune_overlaps(rng, objects, aim, OVERLAP_TOLERANCE)
    overlaps = rendered_overlaps(objects, num_frames)
    if abs(overlaps - target) <= OVERLAP_TOLERANCE * target:
      break
    aim *= target / max(overlaps, 1)
  return overlaps


def choose_plan(seed_seq: np.random.SeedSequence, num_frames: int) -> list[FallingObject]:
  """The first of up to PLAN_CANDIDATES plans within tolerance of PLAN_TARGETS, else the
  closest one; videos shorter than MIN_SELECT_FRAMES take the first plan as it is."""
  best, best_error = None, np.inf
  count = PLAN_CANDIDATES if num_frames >= MIN_SELECT_FRAMES else 1
  for child in seed_seq.spawn(count):
    rng = np.random.default_rng(child)
    plan = plan_scene(rng, num_frames)
    if count == 1:
      return plan
    if max(plan_errors(plan, num_frames).values()) > max(1.0, best_error):
      continue  # cannot beat the best so far: skip the costlier overlap fitting
    error = max(plan_errors(plan, num_frames, fit_overlaps(rng, plan, num_frames)).values())
    if best is None or error < best_error:
      best, best_error = plan, error
    if error <= 1.0:
      break
  return best


# ----------------------------------------------------------------------------- rendering

def _composite(frame: np.ndarray, sprite: render.Sprite) -> np.ndarray | None:
  """Blends a sprite into frame in place; returns its mask (coverage >= MASK_ALPHA) in frame
  coordinates, clipped to the frame."""
  h, w = sprite.alpha.shape
  fx0, fy0 = max(sprite.x0, 0), max(sprite.y0, 0)
  fx1, fy1 = min(sprite.x0 + w, frame.shape[1]), min(sprite.y0 + h, frame.shape[0])
  if fx1 <= fx0 or fy1 <= fy0:
    return None
  sx0, sy0 = fx0 - sprite.x0, fy0 - sprite.y0
  sl = (slice(sy0, sy0 + fy1 - fy0), slice(sx0, sx0 + fx1 - fx0))
  alpha = sprite.alpha[sl]
  region = frame[fy0:fy1, fx0:fx1]
  blended = region * (1.0 - alpha[:, :, None] / 255.0) + sprite.color[sl]
  region[:] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
  mask = np.zeros(frame.shape[:2], bool)
  mask[fy0:fy1, fx0:fx1] = sprite.coverage[sl] >= MASK_ALPHA
  return mask


def _box(mask: np.ndarray) -> list[float]:
  rows = np.flatnonzero(mask.any(1))
  cols = np.flatnonzero(mask.any(0))
  return [float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]),
          float(rows[-1] + 1 - rows[0])]


def _rle(mask: np.ndarray) -> dict:
  encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
  return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def annotate_frame(frame: np.ndarray, objects: Sequence[FallingObject], index: int,
                   object_gain: float) -> list[tuple[FallingObject, np.ndarray]]:
  """Draws the objects in view into `frame` (far first) and returns (object, visible mask)
  for each one that gets a box: at least MIN_VISIBLE rows of it inside the frame and at
  least MIN_VISIBLE_FRACTION of its in-frame pixels unoccluded."""
  active = sorted((o for o in objects if o.first <= index <= o.last), key=lambda o: -o.depth)
  drawn = []
  t = np.array([float(index)])
  for obj in active:
    sprite = render.render(obj.mesh, obj.rotations(t)[0], tuple(obj.centres(t)[0]),
                           blur=MOTION_BLUR * obj.speed(index), gain=object_gain)
    mask = _composite(frame, sprite)
    if mask is not None and mask.any():
      drawn.append((obj, mask))
  out = []
  for k, (obj, mask) in enumerate(drawn):
    rows = np.flatnonzero(mask.any(1))
    if rows[-1] + 1 - rows[0] < MIN_VISIBLE:
      continue
    visible = mask.copy()
    for _, nearer in drawn[k + 1:]:
      visible &= ~nearer
    if visible.any() and visible.sum() >= MIN_VISIBLE_FRACTION * mask.sum():
      out.append((obj, visible))
  return out


def split_seed(seed: int, split: str) -> np.random.SeedSequence:
  """The seed sequence of one split: (seed, index of split in schema.SPLITS)."""
  if split not in schema.SPLITS:
    raise UserError(f"split {split!r}: unknown; use one of {', '.join(schema.SPLITS)}")
  return np.random.SeedSequence([seed, schema.SPLITS.index(split)])


def generate_split(out_dir: str, split: str, num_frames: int, seed: int, *,
                   backgrounds_dir: str | None = None, rle: bool = True,
                   progress: bool = True) -> dict:
  """Writes one split's annotations and video under `out_dir`; returns summary numbers."""
  if num_frames < 1:
    raise UserError(f"--num_frames {num_frames}: must be positive")
  start = time.perf_counter()
  plan_seq, background_seq = split_seed(seed, split).spawn(2)
  background = make_background(np.random.default_rng(background_seq), num_frames,
                               backgrounds_dir)
  objects = choose_plan(plan_seq, num_frames)
  ann_path = schema.annotation_path(out_dir, split)
  vid_path = schema.video_path(out_dir, split)
  per_frame: list[list[tuple[FallingObject, list[float], dict | list]]] = []

  def frames():
    render_start = time.perf_counter()
    for index in range(num_frames):
      frame = background.frame(index)
      gain = float(np.clip((background.targets[index] / OBJECT_LIGHT_REFERENCE) ** 0.5,
                           *OBJECT_LIGHT_RANGE))
      per_frame.append([(obj, _box(visible), _rle(visible) if rle else [])
                        for obj, visible in annotate_frame(frame, objects, index, gain)])
      yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
      if progress and ((index + 1) % 600 == 0 or index + 1 == num_frames):
        elapsed = time.perf_counter() - render_start
        print(f"{split}: {index + 1}/{num_frames} frames, {(index + 1) / elapsed:.1f} fps",
              flush=True)

  schema.write_video(vid_path, frames())
  track_ids: dict[int, int] = {}
  annotations = []
  for index, entries in enumerate(per_frame):
    for obj, _, _ in entries:
      track_ids.setdefault(id(obj), len(track_ids) + 1)
    for obj, box, segmentation in sorted(entries, key=lambda e: track_ids[id(e[0])]):
      annotations.append({
          "image_id": index + 1, "category_id": obj.category_id, "segmentation": segmentation,
          "bbox": box, "area": box[2] * box[3], "iscrowd": 0, "id": len(annotations),
          "track_id": track_ids[id(obj)]})
  schema.write_annotations(ann_path, {
      "info": dict(INFO, description=f"{INFO['description']} (seed {seed}, split {split})"),
      "licenses": [],
      "images": [{"file_name": schema.file_name(i), "width": schema.WIDTH,
                  "height": schema.HEIGHT, "id": i + 1} for i in range(num_frames)],
      "annotations": annotations,
      "categories": [dict(c) for c in schema.CATEGORIES],
  })
  categories = {}
  for ann in annotations:
    categories[ann["track_id"]] = ann["category_id"]
  seconds = time.perf_counter() - start
  return {
      "split": split, "num_frames": num_frames, "num_annotations": len(annotations),
      "num_tracks": len(categories),
      "num_bolts": sum(c == 1 for c in categories.values()),
      "num_nuts": sum(c == 2 for c in categories.values()),
      "seconds": seconds, "fps": num_frames / seconds,
      "annotation_path": ann_path, "video_path": vid_path,
  }


def generate(out_dir: str, splits: Sequence[str] = schema.SPLITS,
             num_frames: int | None = None, seed: int = 0, *,
             backgrounds_dir: str | None = None, rle: bool = True,
             progress: bool = True) -> list[dict]:
  """Writes every split (default lengths unless `num_frames`); returns their summaries."""
  for split in splits:
    split_seed(seed, split)  # rejects unknown names before anything is written
  return [generate_split(out_dir, split, num_frames or DEFAULT_FRAMES[split], seed,
                         backgrounds_dir=backgrounds_dir, rle=rle, progress=progress)
          for split in splits]


def _define_flags() -> None:
  """CLI flags, defined only when this module runs as a program (it is a library too)."""
  flags.DEFINE_string("out_dir", None, "Root folder to write the challenge layout to.")
  flags.DEFINE_integer("seed", 0, "Random seed; each split derives its own.")
  flags.DEFINE_list("splits", list(schema.SPLITS), "Splits to generate.")
  flags.DEFINE_integer(
      "num_frames", None, "Frames per split (default: train 7200, val 1800, test 1800).")
  flags.DEFINE_string(
      "backgrounds", None, "Folder of real empty background images to use instead of the "
      "procedural hall.")
  flags.DEFINE_bool(
      "empty_segmentation", False, "Write segmentation [] like the real files instead of RLE.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}; see --help")
  if not flags.FLAGS.out_dir:
    raise UserError("--out_dir is required")
  for summary in generate(flags.FLAGS.out_dir, flags.FLAGS.splits, flags.FLAGS.num_frames, flags.FLAGS.seed,
                          backgrounds_dir=flags.FLAGS.backgrounds,
                          rle=not flags.FLAGS.empty_segmentation):
    print(f"{summary['split']}: {summary['num_frames']} frames, {summary['num_tracks']} tracks "
          f"({summary['num_bolts']} bolts, {summary['num_nuts']} nuts), "
          f"{summary['num_annotations']} boxes, {summary['fps']:.1f} fps overall -> "
          f"{summary['annotation_path']}, {summary['video_path']}")


if __name__ == "__main__":
  _define_flags()
  app.run(run_cli(main))
