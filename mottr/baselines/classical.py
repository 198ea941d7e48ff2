"""Classical baseline: background subtraction, contours, SORT association and a shape rule.

  python -m mottr.baselines.classical --video PATH [--output_dir DIR] [--fps F] [--no_video]
                                      [--fg_threshold T] [--match_iou I] [--min_hits N]
                                      [--miss_tolerance M] [--edge_tolerance E] [--overwrite]

No learning. Per frame (at half resolution):
1. camera pan: the translation from the previous frame, found by ECC (OpenCV) started from
   the previous frame's pan and restricted to pixels that already agree there, so falling
   objects do not drag it;
2. background: the per-pixel median of earlier frames (every 6th of the last ~42), each
   shifted by the pan since and scaled to the current frame's mean brightness, so the slow
   pan and the brightness drift cancel while objects (which move >= 5 px/frame) drop out;
3. foreground: pixels whose largest channel difference to it exceeds --fg_threshold, opened
   and closed; contours -> boxes, nearby boxes merged, specks, thin strips and huge blobs
   dropped;
4. tracks: `mottr.baselines.sort.SortTracker` (Hungarian IoU on gravity-aware Kalman
   predictions); a track that did not move down by at least 40 px is dropped when it ends;
5. class: a track is a nut when its fully visible boxes (median sides) are nut-sized (longer
   side 38-52 px) and near-square (aspect <= 1.55), else a bolt.
The tracking loop, counting, output files and the evaluation are those of `mottr.infer`
(`mottr.runner`); outputs go to outputs/<video stem>_classical/ unless --output_dir.
"""
import collections
import dataclasses
import os

from absl import app
from absl import flags
import cv2
import numpy as np

from mottr import cli
from mottr import runner
from mottr import schema
from mottr.baselines import sort
from mottr.errors import parse_flags
from mottr.schema import Track, UserError, run_cli
from mottr.sources import FrameSource

BOLT, NUT = 0, 1  # class indices
_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 1e-3)


@dataclasses.dataclass
class ClassicalSettings:
  """Detector and class-rule constants; pixel sizes refer to the full-resolution frame."""
  fg_threshold: float = 20.0  # gray levels (0-255)
  weak_fraction: float = 0.7  # of fg_threshold: weaker pixels join a blob they touch
  scale: float = 0.5  # processing resolution
  motion_scale: float = 0.25  # pan-estimation resolution
  history: int = 7  # reference frames in the median background
  history_gap: int = 6  # frames (at 30 FPS) between reference frames
  max_pan: float = 3.0  # px/frame (at 30 FPS) the camera may move
  pan_agree: float = 8.0  # gray levels: pixels agreeing this well steer the pan estimate
  min_area: float = 150.0  # px² of a contour
  min_side: float = 12.0  # px: shorter box side
  max_side: float = 240.0  # px: longer box side
  max_aspect: float = 6.0  # longer / shorter box side
  merge_gap: float = 6.0  # px: boxes closer than this merge
  min_fall: float = 40.0  # px: how far down a track must move to be kept
  nut_min_side: float = 38.0  # px: least longer side of a nut's fully visible box
  nut_max_side: float = 52.0  # px: most longer side of a nut's fully visible box
  nut_max_aspect: float = 1.55  # longer / shorter side of a nut's fully visible box


def merge_boxes(boxes: list[np.ndarray], gap: float) -> list[np.ndarray]:
  """Unions of xywh boxes that overlap or lie within `gap` px of each other."""
  boxes = [np.asarray(b, np.float64) for b in boxes]
  merged = True
  while merged:
    merged = False
    for i in range(len(boxes)):
      for j in range(i + 1, len(boxes)):
        a, b = boxes[i], boxes[j]
        if (a[0] - gap <= b[0] + b[2] and b[0] - gap <= a[0] + a[2]
            and a[1] - gap <= b[1] + b[3] and b[1] - gap <= a[1] + a[3]):
          x0, y0 = min(a[0], b[0]), min(a[1], b[1])
          x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
          boxes[i] = np.array([x0, y0, x1 - x0, y1 - y0])
          del boxes[j]
          merged = True
          break
      if merged:
        break
  return boxes


def shape_class(width: float, height: float, settings: ClassicalSettings) -> int:
  """NUT for a nut-sized near-square box, else BOLT."""
  long_side, short_side = max(width, height), max(min(width, height), 1e-6)
  sized = settings.nut_min_side <= long_side <= settings.nut_max_side
  return NUT if sized and long_side / short_side <= settings.nut_max_aspect else BOLT


class BackgroundDetector:
  """Moving objects against a pan-compensated running-median background (a `sort.Detector`)."""

  def __init__(self, settings: ClassicalSettings, frame_size: tuple[int, int],
               frame_step: int = 1):
    self.settings = settings
    self.width, self.height = frame_size
    self.gap = max(1, round(settings.history_gap / frame_step))  # in processed frames
    self.max_pan = settings.max_pan * frame_step * settings.scale  # px per processed frame
    self._history = collections.deque(maxlen=settings.history * self.gap)
    self._offset = np.zeros(2)  # accumulated pan, processing px
    self._pan = np.zeros(2)  # last frame-to-frame pan, processing px
    self._previous: np.ndarray | None = None  # gray at motion scale
    self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

  def _update_pan(self, gray: np.ndarray) -> None:
    """ECC translation from the previous frame, started at (and close to) the previous pan."""
    previous, self._previous = self._previous, gray
    if previous is None:
      return
    r = self.settings.motion_scale / self.settings.scale
    guess = np.float32([[1, 0, self._pan[0] * r], [0, 1, self._pan[1] * r]])
    moved = cv2.warpAffine(previous, guess, gray.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
    agree = cv2.GaussianBlur(np.abs(moved - gray), (0, 0), 2) < self.settings.pan_agree
    mask = cv2.erode(agree.astype(np.uint8), np.ones((5, 5), np.uint8))
    try:
      _, warp = cv2.findTransformECC(previous, gray, guess.copy(), cv2.MOTION_TRANSLATION,
                                     _ECC_CRITERIA, mask, 5)
    except cv2.error:  # no convergence (e.g. a featureless frame): keep the previous pan
      warp = guess
    pan = warp[:, 2] / r
    if (np.abs(pan).max() <= self.max_pan
        and np.abs(pan - self._pan).max() <= self.max_pan / 2):
      self._pan = pan
    self._offset = self._offset + self._pan

  def _background(self, mean: float) -> np.ndarray | None:
    """Median of the reference frames, moved to the current view and brightness."""
    refs = []
    for back in range(self.gap - 1, len(self._history), self.gap):
      image, offset, ref_mean = self._history[-1 - back]
      shift = self._offset - offset
      moved = cv2.warpAffine(image, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]),
                             image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
      refs.append(moved * (mean / max(ref_mean, 1e-3)))
    return np.median(np.stack(refs), axis=0) if len(refs) >= 3 else None

  def __call__(self, index: int, frame_bgr: np.ndarray) -> sort.Detections:
    del index
    s = self.settings
    image = cv2.resize(frame_bgr, None, fx=s.scale, fy=s.scale,
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    r = s.motion_scale / s.scale
    self._update_pan(cv2.resize(image.mean(axis=2), None, fx=r, fy=r,
                                interpolation=cv2.INTER_AREA))
    mean = float(image.mean())
    background = self._background(mean)
    self._history.append((image, self._offset.copy(), mean))
    if background is None:
      return sort.Detections.create([], [], [])
    diff = np.abs(image - background).max(axis=2)
    mask = self._foreground(diff)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = [np.array(cv2.boundingRect(c), np.float64) / s.scale for c in contours
             if cv2.contourArea(c) >= s.min_area * s.scale ** 2]
    boxes, scores, labels = self._keep(merge_boxes(boxes, s.merge_gap), diff, mask)
    return sort.Detections.create(boxes, scores, labels)

  def _foreground(self, diff: np.ndarray) -> np.ndarray:
    """Hysteresis: weak pixels (> weak_fraction * fg_threshold) connected to strong ones."""
    s = self.settings
    weak = (diff > s.weak_fraction * s.fg_threshold).astype(np.uint8)
    weak = cv2.morphologyEx(weak, cv2.MORPH_OPEN, self._open)
    weak = cv2.morphologyEx(weak, cv2.MORPH_CLOSE, self._open, iterations=2)
    count, labels = cv2.connectedComponents(weak)
    strong = np.zeros(count, bool)
    strong[labels[(diff > s.fg_threshold) & (weak > 0)]] = True
    strong[0] = False
    return strong[labels].astype(np.uint8) * 255

  def _keep(self, boxes: list[np.ndarray], diff: np.ndarray, mask: np.ndarray):
    """Boxes of plausible size, clipped, with a contrast score in (0.5, 1) and a shape class."""
    s = self.settings
    kept, scores, labels = [], [], []
    for box in boxes:
      x, y, w, h = box
      x0, y0 = max(x, 0.0), max(y, 0.0)
      w, h = min(x + w, self.width) - x0, min(y + h, self.height) - y0
      short, long = min(w, h), max(w, h)
      if short < s.min_side or long > s.max_side or long > s.max_aspect * short:
        continue
      i0, j0 = int(y0 * s.scale), int(x0 * s.scale)
      i1, j1 = int(np.ceil((y0 + h) * s.scale)), int(np.ceil((x0 + w) * s.scale))
      fg = mask[i0:i1, j0:j1] > 0
      contrast = float(diff[i0:i1, j0:j1][fg].mean()) if fg.any() else s.fg_threshold
      kept.append([x0, y0, w, h])
      scores.append(contrast / (contrast + s.fg_threshold))
      labels.append(shape_class(w, h, s))
    return kept, scores, labels


def track_class(track: Track, settings: ClassicalSettings, height: float) -> int:
  """The shape rule on the median of a track's boxes that touch neither the top nor the bottom."""
  boxes = np.array(track.boxes).reshape(-1, 4)
  inside = boxes[(boxes[:, 1] > schema.EDGE_TOL_PX)
                 & (boxes[:, 1] + boxes[:, 3] < height - schema.EDGE_TOL_PX)]
  sides = np.sort((inside if len(inside) else boxes)[:, 2:], axis=1)
  short, long = np.median(sides[:, 0]), np.median(sides[:, 1])
  return shape_class(long, short, settings)


def finisher(settings: ClassicalSettings, height: float) -> sort.FinishTrack:
  """Ends a track: drops it unless it fell `min_fall` px, else gives all its boxes its class."""

  def finish(track: Track) -> Track | None:
    centres = [b[1] + b[3] / 2 for b in track.boxes]
    if max(centres) - centres[0] < settings.min_fall:
      return None
    track.labels = [track_class(track, settings, height)] * len(track.labels)
    return track

  return finish


def run(source: FrameSource, output_dir: str, settings: ClassicalSettings,
        tracking: sort.SortSettings, *, write_video: bool = True,
        progress: bool = True, overwrite: bool = False) -> runner.Result:
  """Runs the classical pipeline over a source; writes mottr.infer's outputs (`runner.record`)."""
  size = (source.width, source.height)
  return sort.run(source, lambda: BackgroundDetector(settings, size, source.frame_step),
                  output_dir, tracking, finish_track=finisher(settings, source.height),
                  write_video=write_video, progress=progress, overwrite=overwrite)


def track_source(source: FrameSource, settings: ClassicalSettings,
                 tracking: sort.SortSettings, *, progress: bool = True) -> runner.Result:
  """The classical pipeline's tracks and counts of a source, nothing written."""
  detector = BackgroundDetector(settings, (source.width, source.height), source.frame_step)
  return sort.track_detections(source, detector, tracking,
                               finish_track=finisher(settings, source.height), progress=progress)


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The flags of this CLI, defined only when it runs (`run_main`, tests)."""
  cli.define("video", "output_dir", "fps", "no_video", "overwrite")
  sort.define_tracking_flags()
  if "fg_threshold" not in FLAGS:
    flags.DEFINE_float("fg_threshold", 20.0,
                       "Foreground: gray levels (0-255) a pixel differs from the background.")
  flags.declare_key_flag("fg_threshold")


def settings_from_flags() -> ClassicalSettings:
  if not FLAGS.fg_threshold > 0:
    raise UserError(f"--fg_threshold {FLAGS.fg_threshold}: must be positive")
  return ClassicalSettings(fg_threshold=FLAGS.fg_threshold)


def main(argv: list[str]) -> None:
  settings, tracking = settings_from_flags(), sort.settings_from_flags()
  sort.check_settings(tracking)
  source = cli.source_from_flags(argv)
  output_dir = cli.default_output_dir(f"{source.name}_classical")
  try:
    result = run(source, output_dir, settings, tracking, write_video=not FLAGS.no_video,
                 overwrite=FLAGS.overwrite)
  except runner.OutputsNotWritten as e:
    cli.exit_unwritten(e)
  cli.report(result, output_dir)


def run_main() -> None:
  """The program (`python -m mottr.baselines.classical`)."""
  define_flags()
  app.run(run_cli(main), flags_parser=parse_flags)


if __name__ == "__main__":
  run_main()
