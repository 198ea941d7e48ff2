"""SORT-style tracking-by-detection: our detector per frame, Hungarian IoU association.

  python -m mottr.baselines.sort --video PATH [--checkpoint DIR] [--output_dir DIR] [--fps F]
                                 [--no_video] [--score_threshold S] [--match_iou I]
                                 [--min_hits N] [--miss_tolerance M] [--edge_tolerance E]
                                 [--overwrite] [--config.model.x=v ...]

The model runs on every frame with an empty track set (`Predictor.reset()` before each frame),
so only its detect queries fire; detections above --score_threshold (after class-agnostic NMS)
are matched to the tracks' Kalman-predicted boxes by maximum IoU (scipy's Hungarian solver).
The motion model is constant velocity plus the known fall acceleration (0.41 px/frame² at
30 FPS) on the box edges not pinned to the frame border. A track gets an id after --min_hits
consecutive hits and dies after more than --miss_tolerance missed frames (at 30 FPS). The
tracking loop, counting, output files and the evaluation are those of `mottr.infer`
(`mottr.runner`); outputs go to outputs/<video stem>_sort/ unless --output_dir.

The association (`SortTracker`) and the engine around any per-frame detector (`SortTracking`)
are shared with `mottr.baselines.classical`.
"""
import dataclasses
import math
import os
import time
from typing import Any, Callable

from absl import app
from absl import flags
import cv2
import numpy as np
from scipy import optimize

from mottr import boxes as boxes_lib
from mottr import cli
from mottr import counting
from mottr import runner
from mottr import schema
from mottr import tracker as tracker_lib
from mottr.boxes import clip_xywh, iou_xywh
from mottr.schema import Track, UserError, run_cli
from mottr.sources import FrameSource

GRAVITY = 0.41  # px/frame² at 30 FPS: objects fall from rest with this acceleration
REST_BOTTOM = -46.0  # px: where an object's bottom edge starts falling (it shows at ~22 px)
POSITION_STD = 1 / 20  # Kalman noise of box position and size, fraction of the box size
VELOCITY_STD = 1 / 160  # Kalman noise of box velocity per frame, fraction of the box size

@dataclasses.dataclass(frozen=True)
class Detections:
  """One frame's detections."""
  boxes: np.ndarray  # float64 [n, 4] COCO xywh pixels, clipped to the frame
  scores: np.ndarray  # float64 [n]
  labels: np.ndarray  # int64 [n] class index = category_id - 1

  @classmethod
  def create(cls, boxes, scores, labels) -> "Detections":
    return cls(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64),
               np.asarray(labels, np.int64))


Detector = Callable[[int, np.ndarray], Detections]  # (0-based frame index, BGR frame)


@dataclasses.dataclass
class SortSettings:
  match_iou: float = 0.3
  min_hits: int = 2
  miss_tolerance: int = 5  # consecutive missed frames at 30 FPS a confirmed track survives
  gravity: float = GRAVITY  # px/frame² at 30 FPS
  # A new track starts with the speed of a fall from rest with its bottom edge at this height
  # (px); None: at rest, as in plain SORT (then sparse frames rarely overlap enough to match).
  rest_bottom: float | None = REST_BOTTOM
  edge_tolerance: float = counting.EDGE_TOLERANCE


def nms(boxes_xywh: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
  """Indices of the boxes kept by greedy non-maximum suppression, by descending score."""
  order = np.argsort(-np.asarray(scores), kind="stable")
  overlaps = iou_xywh(boxes_xywh, boxes_xywh)
  keep = []
  for i in order:
    if all(overlaps[i, k] <= iou for k in keep):
      keep.append(i)
  return np.asarray(keep, np.int64)


def associate(predicted: np.ndarray, detected: np.ndarray,
              min_iou: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
  """Maximum-IoU matching of predicted [T, 4] and detected [D, 4] xywh boxes.

  Returns (matches as (track, detection) pairs, unmatched tracks, unmatched detections);
  pairs overlapping by less than min_iou are never matched.
  """
  matches = []
  if len(predicted) and len(detected):
    iou = iou_xywh(predicted, detected)
    iou[iou < min_iou] = 0.0
    rows, cols = optimize.linear_sum_assignment(-iou)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] > 0]
  matched_t = {t for t, _ in matches}
  matched_d = {d for _, d in matches}
  return (matches, [t for t in range(len(predicted)) if t not in matched_t],
          [d for d in range(len(detected)) if d not in matched_d])


class KalmanBox:
  """Constant-velocity Kalman filter of a box (cx, cy, w, h), with gravity as a known input.

  Gravity accelerates a box edge that is not pinned to the top or bottom frame border, so a
  box clipped while it enters or leaves grows or shrinks instead of falling at full rate.
  """

  def __init__(self, box_xywh: np.ndarray, frame: int,
               velocity: np.ndarray | None = None):
    """A filter at `frame` on the measured box, moving at `velocity` ((cx, cy, w, h) per frame)."""
    z = self._measurement(box_xywh)
    self.mean = np.concatenate([z, np.zeros(4) if velocity is None else velocity])
    scale = np.array([z[2], z[3], z[2], z[3]])
    std = np.concatenate([2 * POSITION_STD * scale, 10 * VELOCITY_STD * scale])
    self.cov = np.diag(np.maximum(std, 1.0) ** 2)
    self.frame = frame

  @staticmethod
  def _measurement(box_xywh: np.ndarray) -> np.ndarray:
    x, y, w, h = np.asarray(box_xywh, np.float64)
    return np.array([x + w / 2, y + h / 2, w, h])

  @property
  def box(self) -> np.ndarray:
    """The current estimate as xywh (not clipped)."""
    cx, cy, w, h = self.mean[:4]
    return np.array([cx - w / 2, cy - h / 2, w, h])

  @staticmethod
  def edge_rates(top: float, bottom: float, rate: float, height: float,
                 pin_px: float = 1.0) -> np.ndarray:
    """(cx, cy, w, h) rates of a box whose free top/bottom edges move at `rate`."""
    r_top = 0.0 if top <= pin_px else rate
    r_bottom = 0.0 if bottom >= height - pin_px else rate
    return np.array([0.0, (r_top + r_bottom) / 2, 0.0, r_bottom - r_top])

  def predict(self, frame: int, gravity: float, height: float) -> None:
    """Advances the estimate to `frame` (gravity in px/frame² of that timeline)."""
    dt = frame - self.frame
    if dt <= 0:
      return
    cy, h = self.mean[1], self.mean[3]
    accel = self.edge_rates(cy - h / 2, cy + h / 2, gravity, height)
    f = np.eye(8)
    f[:4, 4:] = dt * np.eye(4)
    self.mean = f @ self.mean
    self.mean[:4] += 0.5 * accel * dt * dt
    self.mean[4:] += accel * dt
    w, h = np.abs(self.mean[2:4])
    q = np.concatenate([POSITION_STD * np.array([w, h, w, h]),
                        VELOCITY_STD * np.array([w, h, w, h])]) ** 2 * dt
    self.cov = f @ self.cov @ f.T + np.diag(np.maximum(q, 1e-2))
    self.frame = frame

  def update(self, box_xywh: np.ndarray) -> None:
    """Corrects the estimate with a measured box."""
    z = self._measurement(box_xywh)
    r = np.diag(np.maximum(POSITION_STD * np.array([z[2], z[3], z[2], z[3]]), 1.0) ** 2)
    s = self.cov[:4, :4] + r
    gain = np.linalg.solve(s, self.cov[:4, :]).T  # P H^T S^-1 (S symmetric)
    self.mean = self.mean + gain @ (z - self.mean[:4])
    self.cov = self.cov - gain @ self.cov[:4, :]


@dataclasses.dataclass
class _Live:
  kalman: KalmanBox
  track: Track  # track_id 0 until confirmed
  hits: int = 1  # while tentative (a miss ends a tentative track)
  misses: int = 0  # consecutive


class SortTracker(tracker_lib.TrackSet):
  """SORT: Kalman-predicted boxes matched to detections by Hungarian IoU each frame.

  An unmatched detection starts a tentative track; it is confirmed (ids 1, 2, ... in order of
  confirmation) after `min_hits` consecutive hits and dropped, never output, if it misses
  before. A confirmed track dies after more than `miss_tolerance` consecutive misses (frames
  at 30 FPS, scaled to `fps`) or when its predicted box leaves the frame. Tracks hold the
  detected boxes of their hit frames, with the detections' scores and class indices.
  """

  def __init__(self, settings: SortSettings, *, fps: float = schema.FPS, frame_step: int = 1,
               frame_size: tuple[int, int] = (schema.WIDTH, schema.HEIGHT)):
    """fps: of the video timeline; frame_step: timeline frames between two processed frames."""
    self.settings = settings
    self.max_misses = max(
        1, math.ceil(settings.miss_tolerance * fps / frame_step / schema.FPS - 1e-9))
    self.gravity = settings.gravity * (schema.FPS / fps) ** 2  # px/frame² of the timeline
    self.width, self.height = frame_size
    self._live: list[_Live] = []
    self._finished: list[Track] = []
    self._next_id = 1

  @property
  def live(self) -> list[Track]:
    """Confirmed tracks alive after the last update, in id order."""
    return sorted((l.track for l in self._live if l.track.track_id), key=lambda t: t.track_id)

  def update(self, detections: Detections, frame_index: int) -> None:
    """Consumes one frame's detections (frame_index: 0-based, on the video timeline)."""
    for live in self._live:
      live.kalman.predict(frame_index, self.gravity, self.height)
    predicted = clip_xywh(
        np.array([l.kalman.box for l in self._live]).reshape(-1, 4), self.width, self.height)
    inside = (predicted[:, 2] > 0) & (predicted[:, 3] > 0)
    for live in (l for l, ok in zip(self._live, inside) if not ok):
      self._end(live)
    self._live = [l for l, ok in zip(self._live, inside) if ok]
    predicted = predicted[inside]

    matches, missed, unmatched = associate(predicted, detections.boxes, self.settings.match_iou)
    for t, d in matches:
      live = self._live[t]
      live.kalman.update(detections.boxes[d])
      live.track.add(frame_index, detections.boxes[d], detections.scores[d],
                     detections.labels[d])
      live.hits += 1
      live.misses = 0
      self._confirm_if_ready(live)
    survivors = []
    missed = set(missed)
    for t, live in enumerate(self._live):
      if t in missed:
        live.misses += 1
        if not live.track.track_id or live.misses > self.max_misses:
          self._end(live)
          continue
      survivors.append(live)
    for d in unmatched:
      box = detections.boxes[d]
      live = _Live(KalmanBox(box, frame_index, self._birth_velocity(box)), Track(0))
      live.track.add(frame_index, box, detections.scores[d], detections.labels[d])
      self._confirm_if_ready(live)
      survivors.append(live)
    self._live = survivors

  def _birth_velocity(self, box_xywh: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) velocity of a new track: that of a fall from rest_bottom, or zero."""
    if self.settings.rest_bottom is None:
      return np.zeros(4)
    top, bottom = box_xywh[1], box_xywh[1] + box_xywh[3]
    speed = math.sqrt(2 * self.gravity * max(bottom - self.settings.rest_bottom, 0.0))
    return KalmanBox.edge_rates(top, bottom, speed, self.height)

  def _confirm_if_ready(self, live: _Live) -> None:
    if not live.track.track_id and live.hits >= self.settings.min_hits:
      live.track.track_id = self._next_id
      self._next_id += 1

  def _end(self, live: _Live) -> None:
    if live.track.track_id:
      self._finished.append(live.track)


FinishTrack = Callable[[Track], "Track | None"]


class SortTracking:
  """The tracking engine (`mottr.runner.FrameTracking`) of a per-frame detector + SortTracker;
  `finish_track` may rewrite each ended track (e.g. its class) or drop it (None) before it is
  counted and output."""
  dropped_births = 0

  def __init__(self, source: FrameSource, detector: Detector, settings: SortSettings,
               finish_track: FinishTrack | None = None):
    self.detector = detector
    self.tracker = SortTracker(settings, fps=source.fps, frame_step=source.frame_step,
                               frame_size=(source.width, source.height))
    self.edge_tolerance = settings.edge_tolerance
    self._finish = finish_track or (lambda t: t)

  def update(self, index: int, frame_bgr: np.ndarray, upcoming: np.ndarray | None) -> None:
    del upcoming  # the detector runs frame by frame
    self.tracker.update(self.detector(index, frame_bgr), index)

  @property
  def live(self) -> list[Track]:
    return self.tracker.live

  def _kept(self, ended: list[Track]) -> list[Track]:
    return [t for t in map(self._finish, ended) if t is not None]

  def pop_finished(self) -> list[Track]:
    return self._kept(self.tracker.pop_finished())

  def finish(self) -> list[Track]:
    return self._kept(self.tracker.finish())


def track_detections(source: FrameSource, detector: Detector, settings: SortSettings, *,
                     finish_track: FinishTrack | None = None,
                     progress: bool = True) -> runner.Result:
  """Runs detector + SortTracker over the source (`runner.track`), nothing written."""
  return runner.track(source, SortTracking(source, detector, settings, finish_track),
                      progress=progress)


def run(source: FrameSource, make_detector: Callable[[], Detector], output_dir: str,
        settings: SortSettings, *, finish_track: FinishTrack | None = None,
        write_video: bool = True, progress: bool = True, overwrite: bool = False) -> runner.Result:
  """Tracks a source and writes mottr.infer's outputs into output_dir (`runner.record`).

  The detector is made (`make_detector()`) only after the output directory proved writable.
  """
  return runner.record(source, lambda: SortTracking(source, make_detector(), settings,
                                                    finish_track),
                       output_dir, write_video=write_video, overwrite=overwrite,
                       progress=progress)


class ModelDetector:
  """Our detector without track queries: each frame starts from an empty track set."""

  def __init__(self, predictor: Any, frame_size: tuple[int, int], *,
               score_threshold: float = 0.5, nms_iou: float = 0.7):
    self.predictor = predictor
    self.width, self.height = frame_size
    self.score_threshold = score_threshold
    self.nms_iou = nms_iou

  def __call__(self, index: int, frame_bgr: np.ndarray) -> Detections:
    del index  # every frame on its own
    size = self.predictor.input_size
    rgb = cv2.resize(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB), (size, size),
                     interpolation=cv2.INTER_AREA)
    self.predictor.reset()
    out = self.predictor.refine(frame_bgr, self.predictor.step(rgb))
    detect = slice(out.num_slots, None)
    boxes = clip_xywh(
        boxes_lib.cxcywh_to_xywh_px(np.asarray(out.boxes[detect], np.float64), self.width,
                                    self.height), self.width, self.height)
    scores = np.asarray(out.scores[detect], np.float64)
    keep = np.flatnonzero((scores >= self.score_threshold) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0))
    keep = keep[nms(boxes[keep], scores[keep], self.nms_iou)]
    return Detections.create(boxes[keep], scores[keep], np.asarray(out.labels)[detect][keep])


FLAGS = flags.FLAGS


def define_tracking_flags() -> None:
  """The SORT association flags, shared with mottr.baselines.classical."""
  if "match_iou" not in FLAGS:
    flags.DEFINE_float(
        "match_iou", 0.3, "Least IoU of a detection with a track's predicted box to continue it.")
    flags.DEFINE_integer(
        "min_hits", 2, "Consecutive hits a new track needs before it is confirmed (gets an id).")
    flags.DEFINE_integer(
        "miss_tolerance", 5, "Consecutive misses (frames at 30 FPS) a track survives.")
    flags.DEFINE_float("edge_tolerance", counting.EDGE_TOLERANCE,
                       "Fraction of the frame height that counts as the bottom edge.")
  for name in ("match_iou", "min_hits", "miss_tolerance", "edge_tolerance"):
    FLAGS.register_key_flag_for_module(cli.main_module_name(), FLAGS[name])


def define_flags() -> None:
  """The flags of this CLI, defined only when it runs (`run_main`, tests)."""
  cli.define("video", "checkpoint", "output_dir", "fps", "no_video", "overwrite")
  define_tracking_flags()
  if "score_threshold" not in FLAGS:
    flags.DEFINE_float("score_threshold", 0.5, "Detections scoring less are ignored.")
    flags.DEFINE_float(
        "nms_iou", 0.7, "Class-agnostic NMS of the detections: a box overlapping a stronger one "
        "by more IoU is dropped.")
  for name in ("score_threshold", "nms_iou"):
    flags.declare_key_flag(name)


def settings_from_flags() -> SortSettings:
  return SortSettings(match_iou=FLAGS.match_iou, min_hits=FLAGS.min_hits,
                      miss_tolerance=FLAGS.miss_tolerance, edge_tolerance=FLAGS.edge_tolerance)


def model_detector_from_flags(frame_size: tuple[int, int], predictor: Any = None) -> ModelDetector:
  """ModelDetector of --checkpoint (or the given predictor) with --score_threshold/--nms_iou."""
  return ModelDetector(predictor or cli.load_predictor(), frame_size,
                       score_threshold=FLAGS.score_threshold, nms_iou=FLAGS.nms_iou)


def check_settings(settings: SortSettings) -> None:
  if settings.min_hits < 1:
    raise UserError(f"--min_hits {settings.min_hits}: must be at least 1")
  if settings.miss_tolerance < 0:
    raise UserError(f"--miss_tolerance {settings.miss_tolerance}: must be at least 0")
  if not 0 <= settings.match_iou <= 1:
    raise UserError(f"--match_iou {settings.match_iou}: must be within [0, 1]")


def main(argv: list[str]) -> None:
  settings = settings_from_flags()
  check_settings(settings)
  source = cli.source_from_flags(argv)
  output_dir = cli.default_output_dir(f"{source.name}_sort")
  try:
    result = run(source, lambda: model_detector_from_flags((source.width, source.height)),
                 output_dir, settings, write_video=not FLAGS.no_video, overwrite=FLAGS.overwrite)
  except runner.OutputsNotWritten as e:
    cli.exit_unwritten(e)
  cli.report(result, output_dir)


def run_main() -> None:
  """The program (`python -m mottr.baselines.sort`)."""
  define_flags()
  app.run(run_cli(main), flags_parser=cli.flags_parser)


if __name__ == "__main__":
  run_main()
