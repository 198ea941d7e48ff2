"""Track and count the bolts and nuts falling through a video.

  python -m mottr.infer --video PATH [--checkpoint DIR] [--output_dir DIR] [--fps F] [--no_video]
                        [--overwrite] [--config.tracker.x=v ...] [--config.model.x=v ...]
  (or: mottr-infer ...)

PATH is a video file, a webcam index (`0`), a stream URL, or a directory of frames named
`NNNN.jpg` by image_id (frame index + 1; e.g. every 10th frame, as in ../shared/stroma/frames), or
by 0-based frame index when the folder holds 0000.jpg (see `mottr.sources.frame_files`). The
tracker thresholds are the `tracker` section of the model's config.json (tuned with the weights);
`--config.tracker.birth_threshold=0.8` changes one.
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
import os
import signal
import sys
import threading
from typing import Any, Callable

import numpy as np

from mottr import cli
from mottr import runner
from mottr import tracker as tracker_lib
from mottr.runner import WARMUP_FRAMES
from mottr.sources import FrameSource

FLAGS = cli.FLAGS
FLAG_NAMES = ("video", "checkpoint", "output_dir", "fps", "no_video", "overwrite")


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

  def step(self, frame: Any) -> Any:
    out = self._predictor.step(frame)
    self._steps += 1
    if self._steps >= WARMUP_FRAMES:
      self._held.release()
    return out


class _ReleasingTracking(runner.ModelTracking):
  """MOTR tracking that releases held signals when the source ends (a source shorter than
  WARMUP_FRAMES), as tracking is over then."""

  def __init__(self, source: FrameSource, predictor: Any, settings: tracker_lib.TrackerSettings,
               held: _DeferredSignals):
    super().__init__(source, predictor, settings)
    self._held = held

  def finish(self) -> list:
    tracks = super().finish()
    self._held.release()
    return tracks


def run(source: FrameSource, load_predictor: Callable[[], Any], output_dir: str,
        settings: tracker_lib.TrackerSettings | None = None, *, write_video: bool = True,
        progress: bool = True, overwrite: bool = False) -> runner.Result:
  """Tracks a source with MOTR and writes all outputs into output_dir (`runner.record`).

  The predictor is loaded (`load_predictor()`) only after the output directory proved writable.
  Ctrl-C or SIGTERM while it loads and compiles takes effect once that is done
  (`_DeferredSignals`). settings: the tracker thresholds; None: the model config's.
  """
  held: list[_DeferredSignals] = []

  def make_tracking() -> runner.ModelTracking:
    held.append(_DeferredSignals())
    predictor = _ReleaseAfterWarmup(load_predictor(), held[0])
    return _ReleasingTracking(source, predictor, settings or cli.tracker_settings(predictor),
                              held[0])

  try:
    return runner.record(source, make_tracking, output_dir, write_video=write_video, overwrite=overwrite, progress=progress)
  finally:
    for h in held:
      h.release()


def load_predictor_from_flags() -> Any:
  """The predictor of --checkpoint with the --config.* overrides."""
  return cli.load_predictor()


def main(argv: list[str]) -> None:
  cli.interrupt_on_sigterm()
  source = cli.source_from_flags(argv)
  output_dir = cli.default_output_dir(source.name)
  try:
    result = run(source, load_predictor_from_flags, output_dir, write_video=not FLAGS.no_video,
                 overwrite=FLAGS.overwrite)
  except KeyboardInterrupt:
    print("error: interrupted before the first frame was tracked; nothing written",
          file=sys.stderr)
    sys.exit(cli.interrupted_status())
  except runner.OutputsNotWritten as e:
    cli.exit_unwritten(e)
  cli.report(result, output_dir)
  if result.interrupted:
    sys.exit(cli.interrupted_status())


def define_flags() -> None:
  cli.define(*FLAG_NAMES)


def run_main() -> None:
  """The program (`python -m mottr.infer`, console script `mottr-infer`)."""
  define_flags()
  cli.run_program(main, __doc__)


if __name__ == "__main__":
  run_main()
