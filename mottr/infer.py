"""Track and count the bolts and nuts falling through a video.

  python -m mottr.infer --video PATH [--checkpoint DIR] [--output_dir DIR] [--fps F] [--no_video]
                        [--config.model.x=v ...]

PATH is a video file, a webcam index (`0`), a stream URL, or a directory of frames named
`NNNN.jpg` by image_id (frame index + 1; e.g. every 10th frame, as in ../shared/stroma/frames), or
by 0-based frame index when the folder holds 0000.jpg (see `frame_files`).
The video is streamed frame by frame (constant memory). Prints progress with FPS on stderr and
one line `bolt=<n> nut=<m>` on stdout. Ctrl-C or SIGTERM (timeout, docker stop, systemd) stops
early, still writes the outputs for the frames seen with "interrupted": true in counts.json, and
exits 130 (Ctrl-C) or 143 (SIGTERM); one that arrives while the model loads and compiles takes
effect once the first frames are through (a second one ends the process at once). A video that ends before the frame count in its header (a
truncated file) is counted as far as it decodes, with one warning line and "complete": false,
"frames_expected" and "frames" (decoded) in counts.json.

Writes into --output_dir (default outputs/<video stem>/), all or nothing: counts.json, tracks.txt
(MOTChallenge), tracks.json (challenge COCO schema + score), annotated.mp4 and counts.png. Other
files in that folder are never touched. A folder that already holds any of these five (an
earlier run, e.g. another val.mp4) is refused before any work unless --overwrite, which replaces
exactly these five. A second run writing into the same folder at the same time is refused (lock
file .mottr.lock); hidden .mottr.tmp-* folders left by a killed run are removed by the next run.
An --output_dir that is an existing file is refused before any work. When writing the outputs
fails at the end (disk full, I/O error), nothing of the run is left there, the counts line is
still printed, then one line `error: could not write outputs to DIR (...)`, and the exit status
is 1.
"""
import dataclasses
import glob
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np

from data_prep import challenge
from mottr import config_overrides
from mottr import counting
from mottr import outputs
from mottr import tracker as tracker_lib
from mottr.errors import UserError, parse_flags, quiet_native_stderr, run_cli

# Below this many processed frames per second of video (e.g. every 10th frame of a 30 FPS video),
# births use TrackerSettings.sparse_birth_threshold: an object is seen in a few frames only.
SPARSE_FPS = 10.0


_VIDEO = flags.DEFINE_string(
    "video", None, "Video file, webcam index, stream URL or frames directory.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Exported model or training workdir; default: the shipped model.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Output directory; default outputs/<video stem>/. Our files are added to "
    "it; other files in it are never touched.")
_FPS = flags.DEFINE_float(
    "fps", None, "Frame rate of the video timeline; default: the container's (30 for frames).")
_NO_VIDEO = flags.DEFINE_bool("no_video", False, "Do not write annotated.mp4.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace the outputs of an earlier run in --output_dir (only the files "
    "this command writes; other files are never touched). Without it such a folder is refused.")
_BIRTH = flags.DEFINE_float(
    "birth_threshold", 0.7, "Score for a detect query to start a track (tuned with the motion rule on the dense real clip and synthetic val: docs/tracker_dense.md).")
_SPARSE_BIRTH = flags.DEFINE_float(
    "sparse_birth_threshold", 0.5, f"--birth_threshold for sources under {SPARSE_FPS:g} frames per second of video, e.g. every 10th frame (tuned on half of the real val frames).")
_KEEP = flags.DEFINE_float("keep_threshold", 0.4, "Score for a track query to count as a hit (tuned on synthetic val: scripts/tune_tracker.py).")
_MISS = flags.DEFINE_integer(
    "miss_tolerance", 5, "Consecutive misses (frames at 30 FPS) a track survives.")
_DUP_IOU = flags.DEFINE_float(
    "duplicate_iou", 0.7, "A birth overlapping a hit track by more IoU is dropped.")
_MIN_DESCENT = flags.DEFINE_float(
    "min_descent", 20.0, "Motion plausibility: a new track is reported only once its box centre has "
    "moved down this many px (objects fall, scene structure does not); 0 turns the rule off.")
_CONFIRM_WINDOW = flags.DEFINE_float(
    "confirm_window", 8.0, "Frames (at 30 FPS) a new track has to descend --min_descent; after "
    "that it is rejected, never reported, and its slot only suppresses births on its box.")
_FALL_SLACK = flags.DEFINE_float(
    "fall_slack", 3.0, "A track born low in the frame, where objects already fall fast, has at most "
    "this x the time a fall from rest takes there to descend --min_descent (less than "
    "--confirm_window); 0: --confirm_window everywhere.")
_STALL_WINDOW = flags.DEFINE_float(
    "stall_window", 0.0, "A reported track that descends less than --min_descent over this many "
    "frames (at 30 FPS) is ended where it stopped; 0: never.")
_SPARSE_SPOT = flags.DEFINE_float(
    "sparse_spot_window", 20.0, f"Under {SPARSE_FPS:g} frames per second of video: a birth on the box "
    "(IoU > 0.3) of a birth of the last this many frames (at 30 FPS) is dropped; at such rates the "
    "motion prior carries a track born on scene structure down like a falling object, and the "
    "structure fires again; 0: off.")
_NUT_WEIGHT = flags.DEFINE_float(
    "nut_weight", 2.5, "A track is a nut when this x its mean nut probability over its hits beats "
    "its mean bolt probability (1: plain argmax of the mean class probabilities).")
_EDGE = flags.DEFINE_float("edge_tolerance", counting.EDGE_TOLERANCE,
                           "Fraction of the frame height that counts as the bottom edge.")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
OUTPUT_NAMES = ("counts.json", "tracks.txt", "tracks.json", "annotated.mp4", "counts.png")
MAX_FPS = 1000.0  # highest --fps taken (a container rate above it is ignored as bogus)
WARMUP_FRAMES = 2  # frames left out of the steady FPS: the first steps compile the model


@dataclasses.dataclass
class FrameSource:
  """A stream of (0-based frame index, BGR frame) with the timeline it comes from."""
  name: str  # for messages, counts.json and the default output directory
  fps: float  # frames per second of the video timeline
  frame_step: int  # frame-index step between delivered frames (1 for videos)
  width: int
  height: int
  total: int | None  # frames to expect, when known
  frames: Iterator[tuple[int, np.ndarray]]


def _open_failure(spec: str, is_camera: bool, is_stream: bool, opened: bool) -> str:
  """What to do when a source does not open (`opened` False) or gives no first frame."""
  if is_camera:
    return (f"camera {spec}: " + ("opened but gave no frame" if opened else "cannot open it") +
            f"; check that it is connected, that no other program uses it, and that you may read "
            f"it (e.g. /dev/video{spec} and the video group on Linux, camera permission on "
            "macOS); try another index")
  if is_stream:
    return (f"{spec}: " + ("connected but no frame could be decoded" if opened else
                           "cannot open the stream") +
            "; check the URL, that the stream is live and reachable from here (network, "
            "credentials in the URL), and that FFmpeg supports its protocol (rtsp, http, ...); "
            "or record it to a file first")
  if not opened:
    return (f"{spec}: cannot open as a video (not a video, or an unsupported codec); "
            "re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
  return (f"{spec}: no frame could be decoded (empty video or unsupported codec); "
          "check the file or re-encode it")


def _open_capture(spec: str, fps: float | None) -> FrameSource:
  is_camera = spec.isdigit()
  is_stream = "://" in spec
  if not (is_camera or is_stream) and not os.path.isfile(spec):
    raise UserError(f"{spec}: no such file; expected a video file, webcam index, stream URL or "
                    "frames directory")
  with quiet_native_stderr():
    cap = cv2.VideoCapture(int(spec) if is_camera else spec)
    ok, first = cap.read() if cap.isOpened() else (False, None)
  if not cap.isOpened() or not ok:
    cap.release()
    raise UserError(_open_failure(spec, is_camera, is_stream, opened=cap.isOpened()))
  container_fps = cap.get(cv2.CAP_PROP_FPS)
  total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))

  def frames() -> Iterator[tuple[int, np.ndarray]]:
    try:
      yield 0, first
      index = 1
      while True:
        ok, bgr = cap.read()
        if not ok:
          return
        yield index, bgr
        index += 1
    finally:
      cap.release()

  if is_camera:
    name = f"camera{spec}"
  else:
    name = os.path.splitext(os.path.basename(spec.split("?")[0].rstrip("/")))[0] or "stream"
  return FrameSource(name=re.sub(r"[^\w.-]", "_", name),
                     fps=fps or (container_fps if 0 < container_fps < MAX_FPS else challenge.FPS),
                     frame_step=1, width=first.shape[1], height=first.shape[0],
                     total=total if total > 0 and not (is_camera or is_stream) else None,
                     frames=frames())


def frame_files(path: str) -> dict[int, str]:
  """{0-based frame index: file} of a directory of numbered frames (NNNN.jpg, .jpeg or .png).

  Names are image_ids (frame index + 1, as in ../shared/stroma/frames: 0001.jpg is the first
  frame) unless the folder holds a frame numbered 0 (0000.jpg): image_ids start at 1, so such a
  folder is numbered by 0-based frame index, as the challenge's `file_name` ("%04d.jpg" % (id - 1))
  and ffmpeg's `-start_number 0` write it, and 0000.jpg is the first frame. A 0-based folder that
  lacks frame 0 cannot be told apart and is read by image_id (one frame later).
  """
  numbered = {}
  for f in glob.glob(os.path.join(path, "*")):
    stem, suffix = os.path.splitext(os.path.basename(f))
    if suffix.lower() in IMAGE_SUFFIXES and stem.isdigit():
      if int(stem) in numbered:
        raise UserError(f"{path}: {os.path.basename(numbered[int(stem)])} and "
                        f"{os.path.basename(f)} are the same frame; keep one of them")
      numbered[int(stem)] = f
  if not numbered:
    raise UserError(f"{path}: no frames named NNNN.jpg (NNNN = image_id = frame index + 1, or "
                    "0-based frame index from 0000.jpg); pass a video file or such a directory")
  shift = 0 if 0 in numbered else 1
  return {n - shift: f for n, f in numbered.items()}


def _open_frames_dir(path: str, fps: float | None) -> FrameSource:
  files = frame_files(path)
  indices = sorted(files)

  def read(index: int) -> np.ndarray:
    image = cv2.imread(files[index], cv2.IMREAD_COLOR)
    if image is None:
      raise UserError(f"{files[index]}: cannot read this image; replace or remove it")
    return image

  first = read(indices[0])

  def frames() -> Iterator[tuple[int, np.ndarray]]:
    yield indices[0], first
    for index in indices[1:]:
      image = read(index)
      if image.shape != first.shape:
        raise UserError(f"{files[index]}: size {image.shape[1]}x{image.shape[0]} differs from "
                        f"the first frame's {first.shape[1]}x{first.shape[0]}")
      yield index, image

  return FrameSource(name=os.path.basename(os.path.abspath(path)), fps=fps or challenge.FPS,
                     frame_step=counting.frame_step_of(indices), width=first.shape[1],
                     height=first.shape[0], total=len(indices), frames=frames())


def open_source(spec: str, fps: float | None = None) -> FrameSource:
  """Opens a video file, webcam index, stream URL or frames directory; checks its first frame."""
  if fps is not None and not 0 < fps <= MAX_FPS:  # also refuses nan and inf
    raise UserError(f"--fps {fps}: must be a frame rate above 0 and at most {MAX_FPS:g}")
  if os.path.isdir(spec):
    return _open_frames_dir(spec, fps)
  return _open_capture(spec, fps)


@dataclasses.dataclass
class TrackerSettings:
  birth_threshold: float = 0.7
  sparse_birth_threshold: float = 0.5
  keep_threshold: float = 0.4
  miss_tolerance: int = 5
  duplicate_iou: float = 0.7
  min_descent: float = 20.0  # px; 0: no motion-plausibility rule (see mottr.tracker)
  confirm_window: float = 8.0  # frames at 30 FPS
  fall_slack: float = 3.0  # 0: confirm_window wherever a track is born (see mottr.tracker)
  stall_window: float = 0.0  # frames at 30 FPS; 0: off
  sparse_spot_window: float = 20.0  # frames at 30 FPS; under SPARSE_FPS only; 0: off
  nut_weight: float = 2.5  # a track is a nut when nut_weight x its mean nut probability wins
  edge_tolerance: float = counting.EDGE_TOLERANCE

  def birth_threshold_at(self, rate: float) -> float:
    """The birth threshold for a source processed at `rate` frames per second of video."""
    return self.sparse_birth_threshold if rate < SPARSE_FPS else self.birth_threshold


@dataclasses.dataclass
class Result:
  """Everything one run learned about a source."""
  source: FrameSource
  frames: list[int]  # 0-based indices of the frames processed
  tracks: list[tracker_lib.Track]  # by id
  counts: counting.Counts
  interrupted: bool
  dropped_births: int
  seconds: float  # wall time of the whole run
  warmup_seconds: float  # of which the first WARMUP_FRAMES frames (they compile the model)

  @property
  def truncated(self) -> bool:
    """The source ended before the frames it announced (a truncated video file), not stopped."""
    total = self.source.total
    return not self.interrupted and total is not None and len(self.frames) < total

  def truncation_warning(self) -> str:
    return (f"warning: {self.source.name}: the video ended after {len(self.frames)} of the "
            f"{self.source.total} frames its header announces (a truncated or damaged file); "
            "the counts cover the frames decoded")

  @property
  def steady_fps(self) -> float:
    """Frames per second after the warm-up frames."""
    rest, n = self.seconds - self.warmup_seconds, len(self.frames) - WARMUP_FRAMES
    return n / rest if n > 0 and rest > 0 else 0.0


class ProgressLine:
  """`frame n/N  F FPS  bolt=.. nut=..` on stderr, refreshed at most twice a second."""

  def __init__(self, total: int | None, enabled: bool):
    self.total, self.enabled = total, enabled
    self.start = self.last = time.perf_counter()
    self.last_frames = 0

  def update(self, frames: int, running: dict[str, int]) -> None:
    now = time.perf_counter()
    if self.enabled and now - self.last > 0.5:
      fps = (frames - self.last_frames) / (now - self.last)
      self.last, self.last_frames = now, frames
      total = f"/{self.total}" if self.total else ""
      counts = " ".join(f"{k}={v}" for k, v in running.items())
      print(f"\rframe {frames}{total}  {fps:.1f} FPS  {counts}   ", end="", file=sys.stderr, flush=True)

  def close(self) -> None:
    if self.enabled and self.last > self.start:
      print(file=sys.stderr, flush=True)


OnFrame = Callable[[int, np.ndarray, list[tracker_lib.Track], dict[str, int]], None]


def track_source(source: FrameSource, predictor: Any, settings: TrackerSettings, *,
                 on_frame: OnFrame | None = None, progress: bool = True) -> Result:
  """Runs predictor + tracker over the source; Ctrl-C ends early with what was seen.

  Args:
    source: the frames.
    predictor: a `mottr.predictor.Predictor` (or anything with its reset/step/carry).
    settings: tracker and counting thresholds.
    on_frame: called per frame with (frame index, BGR frame, live tracks, running counts).
    progress: print a progress line with FPS on stderr.
  """
  rate = source.fps / source.frame_step
  tracker = tracker_lib.Tracker(
      predictor.num_slots, birth_threshold=settings.birth_threshold_at(rate),
      keep_threshold=settings.keep_threshold, miss_tolerance=settings.miss_tolerance,
      duplicate_iou=settings.duplicate_iou, min_descent=settings.min_descent,
      confirm_window=settings.confirm_window, fall_slack=settings.fall_slack,
      stall_window=settings.stall_window,
      class_weights=(1.0, settings.nut_weight), fps=rate,
      spot_window=settings.sparse_spot_window if rate < SPARSE_FPS else 0.0,
      frame_step=source.frame_step, frame_size=(source.width, source.height))
  count = lambda tracks, final: counting.count_tracks(
      tracks, height=source.height, final_frame=final, frame_step=source.frame_step,
      fps=source.fps, edge_tolerance=settings.edge_tolerance)
  size = predictor.input_size
  predictor.reset(frame_gap=challenge.FPS * source.frame_step / source.fps)
  frames, tracks = [], []
  running = {name: 0 for name in challenge.CATEGORY_NAMES.values()}
  start = time.perf_counter()
  line = ProgressLine(source.total, progress)
  warmup_seconds = 0.0
  interrupted = False
  try:
    for index, bgr in source.frames:
      rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size),
                       interpolation=cv2.INTER_AREA)
      out = predictor.step(rgb)
      frames.append(index)
      predictor.carry(tracker.update(out, index))
      if len(frames) <= WARMUP_FRAMES:
        warmup_seconds = time.perf_counter() - start
      ended = tracker.pop_finished()
      tracks.extend(ended)
      for event in count(ended, None).events:
        running[event.category] += 1
      if on_frame is not None:
        on_frame(index, bgr, tracker.live, running)
      line.update(len(frames), running)
  except KeyboardInterrupt:
    interrupted = True
  finally:
    line.close()
  tracks.extend(tracker.finish())
  tracks.sort(key=lambda t: t.track_id)
  return Result(source, frames, tracks, count(tracks, frames[-1] if frames else None), interrupted,
                tracker.dropped_births, time.perf_counter() - start, warmup_seconds)


def result_coco(result: Result) -> dict:
  """tracks.json content: one image per frame of the timeline up to the last frame processed."""
  s = result.source
  last = result.frames[-1] if result.frames else -1
  coco = outputs.tracks_to_coco(result.tracks, range(last + 1), s.width, s.height)
  coco["info"] = {"description": "mottr tracks", "video": s.name, "fps": s.fps,
                  "frame_step": s.frame_step, "frames_processed": len(result.frames),
                  "frames_expected": s.total,
                  "complete": not (result.truncated or result.interrupted)}
  return coco


def write_outputs(result: Result, directory: str) -> None:
  """counts.json, tracks.txt, tracks.json and counts.png of a result into an existing directory."""
  s = result.source
  coco = result_coco(result)
  outputs.write_json(os.path.join(directory, "counts.json"), outputs.counts_record(
      s.name, len(result.frames), s.fps, s.frame_step, result.counts,
      interrupted=result.interrupted, frames_expected=s.total))
  outputs.write_json(os.path.join(directory, "tracks.json"), coco)
  outputs.write_mot_txt(os.path.join(directory, "tracks.txt"), coco)
  end = (result.frames[-1] + 1) if result.frames else 0
  outputs.plot_cumulative_counts(os.path.join(directory, "counts.png"),
                                 {"predicted": result.counts.events}, end, s.fps)


class OutputsNotWritten(Exception):
  """The whole source was tracked but writing the outputs failed (disk full, I/O error): nothing
  of this run was left in the output directory; `result` holds the counts (see `exit_unwritten`)."""

  def __init__(self, result: Result, output_dir: str, cause: OSError):
    why = cause.strerror or str(cause) or type(cause).__name__
    super().__init__(f"could not write outputs to {output_dir} ({why}): the counts are above")
    self.result = result


def record(source: FrameSource, output_dir: str, track: Callable[[OnFrame | None], Result], *,
           write_video: bool = True, overwrite: bool = False) -> Result:
  """Runs `track(on_frame)` and writes all outputs (annotated video too) into output_dir.

  `outputs.output_dir` rules: other files there are kept, an earlier run's OUTPUT_NAMES are
  refused (UserError, before `track` runs) unless `overwrite`, a concurrent writer is refused.
  An OSError while writing the outputs after tracking (e.g. the disk is full) leaves nothing of
  this run behind and raises OutputsNotWritten, which carries the result.
  """
  result = None
  try:
    with outputs.output_dir(output_dir, OUTPUT_NAMES, overwrite=overwrite) as tmp:
      video = None
      if write_video:
        video = outputs.AnnotatedVideo(os.path.join(tmp, "annotated.mp4"), source.fps,
                                       source.frame_step, (source.width, source.height))
      try:
        result = track(video.write if video else None)
      finally:
        if video is not None:
          video.close()
      if not result.frames:
        if result.interrupted:
          raise KeyboardInterrupt  # before the first frame: nothing to write
        raise UserError(f"{source.name}: stopped before the first frame was processed; "
                        "nothing written")
      write_outputs(result, tmp)
  except OSError as e:
    if result is None or not result.frames:
      raise
    raise OutputsNotWritten(result, output_dir, e) from e
  return result


class _DeferredSignals:
  """Holds SIGINT and SIGTERM back while the model loads and compiles (the first WARMUP_FRAMES
  steps): a KeyboardInterrupt raised into JAX's loading or compiling left native threads behind
  that crashed the interpreter at exit (a segfault in 3 of 4 tries). A signal that arrives then
  is re-sent to this process once `release` restores the handlers; a second one meanwhile takes
  the default action at once (the process ends; a later run cleans its temporary files). Only in
  the main thread (elsewhere signal handlers cannot be set); `release` is idempotent."""

  _SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.pending: list[int] = []
    self.saved: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
      self.saved = {s: signal.getsignal(s) for s in self._SIGNALS}
      for s in self._SIGNALS:
        signal.signal(s, self._hold)

  def _hold(self, signum: int, frame: Any) -> None:
    del frame
    if self.pending:
      signal.signal(signum, signal.SIG_DFL)
      os.kill(os.getpid(), signum)
    self.pending.append(signum)

  def release(self) -> None:
    saved, self.saved = self.saved, {}
    for s, handler in saved.items():
      signal.signal(s, handler)
    if saved and self.pending:
      os.kill(os.getpid(), self.pending[0])  # delivered to the restored handler right here


class _ReleaseAfterWarmup:
  """A predictor whose `step` releases held signals once WARMUP_FRAMES steps have returned."""

  def __init__(self, predictor: Any, held: _DeferredSignals):
    self._predictor, self._held, self._steps = predictor, held, 0

  def __getattr__(self, name: str) -> Any:
    return getattr(self._predictor, name)

  def step(self, frame_rgb: np.ndarray) -> Any:
    out = self._predictor.step(frame_rgb)
    self._steps += 1
    if self._steps >= WARMUP_FRAMES:
      self._held.release()
    return out


def run(source: FrameSource, load_predictor: Callable[[], Any], output_dir: str,
        settings: TrackerSettings, *, write_video: bool = True, progress: bool = True,
        overwrite: bool = False) -> Result:
  """Tracks a source with MOTR and writes all outputs into output_dir (see `record`).

  The predictor is loaded (`load_predictor()`) only after the output directory proved writable.
  Ctrl-C or SIGTERM while it loads and compiles takes effect once that is done
  (`_DeferredSignals`).
  """

  def track(on_frame: OnFrame | None) -> Result:
    held = _DeferredSignals()
    try:
      predictor = _ReleaseAfterWarmup(load_predictor(), held)
      return track_source(source, predictor, settings, on_frame=on_frame, progress=progress)
    finally:
      held.release()

  return record(source, output_dir, track, write_video=write_video, overwrite=overwrite)


def parse_overrides(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
  """Splits `--config.a.b=v` arguments (values as Python literals, else strings) from the rest."""
  rest, overrides = [], {}
  for arg in argv:
    match = re.fullmatch(r"--config\.([\w.]+)=(.*)", arg)
    if match is None:
      rest.append(arg)
      continue
    key, value = match.groups()
    overrides[key] = config_overrides.parse_value(value)
  return rest, overrides


_OVERRIDES: dict[str, Any] = {}


def flags_parser(argv: list[str]) -> list[str]:
  """absl flags parser that also accepts `--config.a.b=v` model overrides."""
  rest, overrides = parse_overrides(argv)
  try:  # keys and types against the default config (a checkpoint's config has the same ones)
    from configs import default  # pylint: disable=g-import-not-at-top
    config_overrides.check(default.get_config(), overrides)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  _OVERRIDES.update(overrides)
  return parse_flags(rest)


def settings_from_flags() -> TrackerSettings:
  return TrackerSettings(birth_threshold=_BIRTH.value, sparse_birth_threshold=_SPARSE_BIRTH.value,
                         keep_threshold=_KEEP.value,
                         miss_tolerance=_MISS.value, duplicate_iou=_DUP_IOU.value,
                         min_descent=_MIN_DESCENT.value, confirm_window=_CONFIRM_WINDOW.value,
                         fall_slack=_FALL_SLACK.value, sparse_spot_window=_SPARSE_SPOT.value,
                         stall_window=_STALL_WINDOW.value, nut_weight=_NUT_WEIGHT.value,
                         edge_tolerance=_EDGE.value)


def load_predictor_from_flags() -> Any:
  """The predictor of --checkpoint with the --config.* overrides (JAX loads only here)."""
  from mottr import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  return predictor_lib.load_predictor(_CHECKPOINT.value, _OVERRIDES or None)


def quiet_logging() -> None:
  """Hides INFO logs (e.g. JAX probing for a TPU) unless --verbosity was given."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def source_from_flags(argv: list[str]) -> FrameSource:
  """The CLI preamble shared by mottr.infer and the baselines: checks argv, opens --video."""
  quiet_logging()
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}; see --help")
  if not _VIDEO.value:
    raise UserError("--video is required: a video file, webcam index, stream URL or frames "
                    "directory")
  return open_source(_VIDEO.value, _FPS.value)


def report(result: Result, output_dir: str) -> None:
  """Speed and output location on stderr, then the one `bolt=<n> nut=<m>` line on stdout."""
  note = " (interrupted)" if result.interrupted else ""
  if result.truncated:
    print(result.truncation_warning() + '; counts.json says "complete": false', file=sys.stderr)
  print(f"{len(result.frames)} frames in {result.seconds:.1f} s ({result.steady_fps:.1f} FPS "
        f"after {WARMUP_FRAMES} warm-up frames); outputs in {output_dir}{note}", file=sys.stderr)
  print(counts_line(result))


def counts_line(result: Result) -> str:
  return " ".join(f"{k}={v}" for k, v in result.counts.counts.items())


def exit_unwritten(e: OutputsNotWritten) -> None:
  """The CLIs' end when the outputs could not be written: the `bolt=<n> nut=<m>` line on stdout
  anyway, one error line saying so on stderr, exit 1."""
  print(counts_line(e.result), flush=True)
  print(f"error: {e}", file=sys.stderr)
  sys.exit(1)


_STOP_SIGNAL: list[int] = []  # the signal that stopped the run, when SIGTERM


def interrupt_on_sigterm() -> None:
  """Makes SIGTERM (timeout, docker stop, systemd) act like Ctrl-C: a KeyboardInterrupt, so that
  tracking stops and the outputs of the frames seen are written. A second SIGTERM is ignored,
  so that it cannot cut the writing short (SIGKILL still ends the process)."""

  def handler(signum: int, frame: Any) -> None:
    del frame
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _STOP_SIGNAL.append(signum)
    raise KeyboardInterrupt

  signal.signal(signal.SIGTERM, handler)


def interrupted_status() -> int:
  """Exit status of an interrupted run: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
  return 128 + (_STOP_SIGNAL[0] if _STOP_SIGNAL else signal.SIGINT)


def main(argv: list[str]) -> None:
  interrupt_on_sigterm()
  source = source_from_flags(argv)
  output_dir = _OUTPUT_DIR.value or os.path.join("outputs", source.name)
  try:
    result = run(source, load_predictor_from_flags, output_dir, settings_from_flags(),
                 write_video=not _NO_VIDEO.value, overwrite=_OVERWRITE.value)
  except KeyboardInterrupt:
    print("error: interrupted before the first frame was tracked; nothing written",
          file=sys.stderr)
    sys.exit(interrupted_status())
  except OutputsNotWritten as e:
    exit_unwritten(e)
  report(result, output_dir)
  if result.interrupted:
    sys.exit(interrupted_status())


if __name__ == "__main__":
  app.run(run_cli(main), flags_parser=flags_parser)
