"""The one tracking loop: any frame -> tracks engine over a frame source, and its output files.

An engine (`FrameTracking`) takes one frame at a time and ends tracks: `ModelTracking` is MOTR
(predictor + `mottr.tracker.Tracker`), the SORT and classical baselines bring their own
(`mottr.baselines.sort`). `track` runs an engine over a source with the running counts, a
progress line and Ctrl-C; `record` does the same into an output directory and writes every file
(counts.json, tracks.txt, tracks.json, annotated.mp4, counts.png) all or nothing.
"""
import dataclasses
import os
import sys
import time
from typing import Any, Callable, Protocol

import cv2
import numpy as np

from mottr import counting
from mottr import outputs
from mottr import schema
from mottr import tracker as tracker_lib
from mottr.schema import Track, UserError
from mottr.sources import FrameSource

OUTPUT_NAMES = ("counts.json", "tracks.txt", "tracks.json", "annotated.mp4", "counts.png")
WARMUP_FRAMES = 2  # frames left out of the steady FPS: the first steps compile the model


class FrameTracking(Protocol):
  """A tracker fed one frame at a time (what `track` runs)."""
  dropped_births: int
  edge_tolerance: float  # of the counting rule (`mottr.counting`) its tracks are counted with

  # `upcoming`: the next frame of the source (None at its end), which an engine may start on early.
  def update(self, index: int, frame_bgr: np.ndarray, upcoming: np.ndarray | None) -> None: ...
  def pop_finished(self) -> list[Track]: ...  # tracks ended since the last call
  def finish(self) -> list[Track]: ...  # ends every live track (end of the source)
  @property
  def live(self) -> list[Track]: ...  # reportable tracks alive after the last update


class ModelTracking:
  """MOTR: the predictor's track queries carried by the runtime tracker, frame by frame. Once a
  frame's outputs are on the host, the upcoming frame's backbone and encoder start (they do not
  depend on the tracks) and run while the tracker, the drawing and the source's decoding do: the
  device no longer waits for the host between frames (`docs/stage21.md`)."""

  def __init__(self, source: FrameSource, predictor: Any, settings: tracker_lib.TrackerSettings):
    self.predictor = predictor
    self.tracker = tracker_lib.Tracker.from_settings(
        predictor.num_slots, settings, fps=source.fps, frame_step=source.frame_step,
        frame_size=(source.width, source.height))
    self.edge_tolerance = settings.edge_tolerance
    predictor.reset(frame_gap=schema.FPS * source.frame_step / source.fps)
    self._upcoming = None  # the encoder memory of the frame after the last one updated

  def _input(self, frame_bgr: np.ndarray) -> np.ndarray:
    size = self.predictor.input_size
    return cv2.resize(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB), (size, size),
                      interpolation=cv2.INTER_AREA)

  def update(self, index: int, frame_bgr: np.ndarray, upcoming: np.ndarray | None) -> None:
    memory = self._upcoming if self._upcoming is not None else self.predictor.encode(self._input(frame_bgr))
    out = self.predictor.step(memory)
    self._upcoming = None if upcoming is None else self.predictor.encode(self._input(upcoming))
    self.predictor.carry(self.tracker.update(self.predictor.refine(frame_bgr, out), index))

  @property
  def dropped_births(self) -> int:
    return self.tracker.dropped_births

  @property
  def live(self) -> list[Track]:
    return self.tracker.live

  def pop_finished(self) -> list[Track]:
    return self.tracker.pop_finished()

  def finish(self) -> list[Track]:
    return self.tracker.finish()


@dataclasses.dataclass
class Result:
  """Everything one run learned about a source."""
  source: FrameSource
  frames: list[int]  # 0-based indices of the frames processed
  tracks: list[Track]  # by id
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


OnFrame = Callable[[int, np.ndarray, list[Track], dict[str, int]], None]


def track(source: FrameSource, tracking: FrameTracking, *, on_frame: OnFrame | None = None,
          progress: bool = True) -> Result:
  """Runs a tracking engine over the source; Ctrl-C ends early with what was seen. The source is
  read one frame ahead, and the engine is given that frame too (`FrameTracking.update`).

  Args:
    source: the frames.
    tracking: the engine (`ModelTracking`, or a baseline's).
    on_frame: called per frame with (frame index, BGR frame, live tracks, running counts).
    progress: print a progress line with FPS on stderr.
  """
  count = lambda tracks, final: counting.count_tracks(
      tracks, height=source.height, final_frame=final, frame_step=source.frame_step,
      fps=source.fps, edge_tolerance=tracking.edge_tolerance)
  frames, tracks = [], []
  running = {name: 0 for name in schema.CATEGORY_NAMES.values()}
  start = time.perf_counter()
  line = ProgressLine(source.total, progress)
  warmup_seconds = 0.0
  interrupted = False
  frames_left = iter(source.frames)
  try:
    item = next(frames_left, None)
    while item is not None:
      index, bgr = item
      item = next(frames_left, None)
      tracking.update(index, bgr, None if item is None else item[1])
      frames.append(index)
      if len(frames) <= WARMUP_FRAMES:
        warmup_seconds = time.perf_counter() - start
      ended = tracking.pop_finished()
      tracks.extend(ended)
      for event in count(ended, None).events:
        running[event.category] += 1
      if on_frame is not None:
        on_frame(index, bgr, tracking.live, running)
      line.update(len(frames), running)
  except KeyboardInterrupt:
    interrupted = True
  finally:
    line.close()
  tracks.extend(tracking.finish())
  tracks.sort(key=lambda t: t.track_id)
  return Result(source, frames, tracks, count(tracks, frames[-1] if frames else None), interrupted,
                tracking.dropped_births, time.perf_counter() - start, warmup_seconds)


def track_source(source: FrameSource, predictor: Any, settings: tracker_lib.TrackerSettings, *,
                 on_frame: OnFrame | None = None, progress: bool = True) -> Result:
  """`track` with MOTR (`ModelTracking`)."""
  return track(source, ModelTracking(source, predictor, settings), on_frame=on_frame,
               progress=progress)


def result_coco(result: Result) -> dict:
  """tracks.json content: one image per frame of the timeline up to the last frame processed."""
  s = result.source
  last = result.frames[-1] if result.frames else -1
  coco = schema.tracks_to_coco(result.tracks, range(last + 1), s.width, s.height)
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
  of this run was left in the output directory; `result` holds the counts."""

  def __init__(self, result: Result, output_dir: str, cause: OSError):
    why = cause.strerror or str(cause) or type(cause).__name__
    super().__init__(f"could not write outputs to {output_dir} ({why}): the counts are above")
    self.result = result


def record(source: FrameSource, make_tracking: Callable[[], FrameTracking], output_dir: str, *,
           write_video: bool = True, overwrite: bool = False, progress: bool = True) -> Result:
  """`track`s the source with the engine `make_tracking()` and writes all outputs (annotated video
  too) into output_dir.

  The engine is made (e.g. the model loaded) only after the output directory proved writable.
  `outputs.output_dir` rules: other files there are kept, an earlier run's OUTPUT_NAMES are
  refused (UserError, before any work) unless `overwrite`, a concurrent writer is refused.
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
        result = track(source, make_tracking(), on_frame=video.write if video else None,
                       progress=progress)
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
