"""Writers of the user-facing files: counts.json, tracks.txt, tracks.json, annotated.mp4 and
counts.png.

Everything goes into one output directory through `output_dir`: files are written into a hidden
staging folder inside it and moved into place (os.replace) only on success; files that are not
ours are never touched, an earlier run's outputs are replaced only with --overwrite, and a lock
refuses a second concurrent writer.
"""
import colorsys
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from typing import Any, Collection, Iterator, Sequence

import cv2
import numpy as np

from mottr import schema
from mottr.counting import Counts, Event
from mottr.schema import UserError

TRAIL_SECONDS = 0.5


LOCK_NAME = ".mottr.lock"  # held (flock) by the run writing into a directory
STAGING_PREFIX = ".mottr.tmp-"  # a run's files before they are moved into place


def _lock(path: str, flag: str) -> int:
  """An exclusive flock on path/LOCK_NAME, refused (UserError) while another run holds it."""
  lock_path = os.path.join(path, LOCK_NAME)
  for _ in range(10):  # the holder unlinks the file when done: lock the file that is in place
    try:
      fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise UserError(f"{path}: cannot write into the output directory ({e.strerror}); choose "
                      f"a writable {flag}") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(fd)
      raise UserError(f"{path}: another mottr run is writing into it ({lock_path} is locked); "
                      f"wait for it to finish or choose another {flag}") from None
    try:
      if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
        return fd
    except FileNotFoundError:
      pass
    os.close(fd)
  raise UserError(f"{path}: cannot lock {lock_path} (it keeps changing); retry, or choose "
                  f"another {flag}")


def _clean_stale(path: str, names: Collection[str]) -> None:
  """Removes the temporary files of runs that were killed (SIGKILL, power loss) in path, and
  the `.NAME.tmp-*` folders that earlier versions left beside it. Call with the lock held."""
  for entry in os.listdir(path):
    if entry.startswith(STAGING_PREFIX):
      _remove(os.path.join(path, entry))
  parent, base = os.path.split(path)
  with contextlib.suppress(OSError):
    for entry in os.listdir(parent):
      old = os.path.join(parent, entry)
      if (entry.startswith(f".{base}.tmp-") and os.path.isdir(old) and not os.path.islink(old)
          and set(os.listdir(old)) <= set(names)):
        shutil.rmtree(old, ignore_errors=True)


def _remove(path: str) -> None:
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  else:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


def _earlier(path: str, names: Collection[str]) -> list[str]:
  return sorted(n for n in names if os.path.lexists(os.path.join(path, n)))


def _refusal(path: str, earlier: list[str], flag: str) -> UserError:
  return UserError(f"{path}: already holds {', '.join(earlier)} (an earlier run's outputs?); "
                   f"pass --overwrite to replace them (other files are kept), or choose another "
                   f"{flag}")


def check_output_dir(path: str, names: Collection[str], *, overwrite: bool = False,
                     flag: str = "--output_dir") -> None:
  """The refusals of `output_dir` before any work (it changes nothing): path is not a
  directory, or already holds some of `names` and not `overwrite`."""
  path = os.path.abspath(path)
  if os.path.lexists(path) and not os.path.isdir(path):
    raise UserError(f"{path}: exists and is not a directory; choose another {flag}")
  if os.path.isdir(path) and not overwrite and _earlier(path, names):
    raise _refusal(path, _earlier(path, names), flag)


@contextlib.contextmanager
def output_dir(path: str, names: Collection[str], *, overwrite: bool = False,
               flag: str = "--output_dir") -> Iterator[str]:
  """Yields a staging directory whose entries are moved into `path` when the block succeeds.

  Never deletes what we did not write:
  - `path` may hold other files; they are never touched;
  - `names` are all the entries (files or folders) the caller may write; when `path` already
    holds some of them (an earlier run's outputs) this refuses (UserError) unless `overwrite`,
    and then it replaces them: each entry written is moved into place with os.replace (atomic
    per file), and those of `names` this run did not write are removed, so that `path` never
    mixes two runs;
  - a second writer into `path` is refused while the first runs (flock on path/.mottr.lock);
  - on any exception nothing is moved and what this created (staging, `path` and its parents
    when they were created here and are empty) is removed;
  - staging directories of killed runs (path/.mottr.tmp-*) are removed on the next run.
  """
  check_output_dir(path, names, overwrite=overwrite, flag=flag)
  path = os.path.abspath(path)
  created = []
  probe = path
  while not os.path.exists(probe):
    created.append(probe)
    probe = os.path.dirname(probe)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    _remove_empty(created)
    why = f"{probe} is not a directory" if not os.path.isdir(probe) else e.strerror
    raise UserError(f"{path}: cannot create the output directory ({why}); "
                    f"choose a writable {flag}") from None
  lock = None
  staging = None
  try:
    lock = _lock(path, flag)
    check_output_dir(path, names, overwrite=overwrite, flag=flag)  # now under the lock
    _clean_stale(path, names)
    try:
      staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=path)
    except OSError as e:
      raise UserError(f"{path}: cannot write into the output directory ({e.strerror}); choose "
                      f"a writable {flag}") from None
    yield staging
    written = sorted(os.listdir(staging))
    unknown = set(written) - set(names)
    if unknown:
      raise ValueError(f"wrote {sorted(unknown)}, not among the declared outputs {sorted(names)}")
    for name in written:
      target = os.path.join(path, name)
      if os.path.isdir(target) and not os.path.islink(target):  # a folder: moved aside first
        os.replace(target, os.path.join(staging, f".old-{name}"))
      os.replace(os.path.join(staging, name), target)
    for name in set(names) - set(written):
      _remove(os.path.join(path, name))
    shutil.rmtree(staging, ignore_errors=True)
  except BaseException:
    if staging is not None:
      shutil.rmtree(staging, ignore_errors=True)
    _unlock(path, lock)
    _remove_empty(created)
    raise
  _unlock(path, lock)


def _unlock(path: str, lock: int | None) -> None:
  """Removes the lock file while it is still held (a run that opened it meanwhile sees it gone:
  see `_lock`), then releases it."""
  if lock is not None:
    with contextlib.suppress(OSError):
      os.remove(os.path.join(path, LOCK_NAME))
    os.close(lock)


def _remove_empty(dirs: list[str]) -> None:
  for d in dirs:  # deepest first
    with contextlib.suppress(OSError):
      os.rmdir(d)


def write_json(path: str, obj: Any) -> None:
  with open(path, "w") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")


def counts_record(video: str, frames: int, fps: float, frame_step: int, counts: Counts, *,
                  interrupted: bool = False, frames_expected: int | None = None) -> dict:
  """The content of counts.json; event frames are 1-based like image_id. `interrupted`: the run
  was stopped (Ctrl-C, SIGTERM) before the end of the video; counts cover the frames seen.
  `frames_expected`: the frames the source announced (a video's header; None when unknown, e.g. a
  camera); "complete" is false when fewer were decoded (a truncated file) or the run was stopped."""
  return {
      "video": video,
      "frames": frames,
      "frames_expected": frames_expected,
      "complete": not interrupted and (frames_expected is None or frames >= frames_expected),
      "interrupted": interrupted,
      "fps": fps,
      "frame_step": frame_step,
      "counts": dict(counts.counts),
      "events": [{"frame": e.frame + 1, "time_s": round(e.frame / fps, 3), "track_id": e.track_id,
                  "category": e.category} for e in counts.events],
  }


def write_mot_txt(path: str, coco: dict) -> None:
  """MOTChallenge rows `frame,id,x,y,w,h,score,-1,-1,-1` (1-based frames) of `schema.tracks_to_coco`."""
  with open(path, "w") as f:
    for a in coco["annotations"]:
      x, y, w, h = a["bbox"]
      f.write(f"{a['image_id']},{a['track_id']},{x:.2f},{y:.2f},{w:.2f},{h:.2f},"
              f"{a['score']:.4f},-1,-1,-1\n")


def plot_cumulative_counts(path: str, series: dict[str, Sequence[Event]], num_frames: int,
                           fps: float) -> None:
  """Step plot of the cumulative count per category for each named series of events."""
  # Imported here, not at the top: matplotlib costs 0.2 s of a CLI's start-up, before its first frame.
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(8, 4))
  ax = fig.subplots()
  end = num_frames / fps
  styles = ["-", "--", ":", "-."]
  colors = {"bolt": "tab:orange", "nut": "tab:blue"}
  for style, (name, events) in zip(styles, series.items()):
    for category, color in colors.items():
      times = [e.frame / fps for e in events if e.category == category]
      ax.step([0.0] + times + [end], [0] + list(range(1, len(times) + 1)) + [len(times)],
              where="post", linestyle=style, color=color, label=f"{name} {category}")
  ax.set_xlabel("time (s)")
  ax.set_ylabel("objects fell through")
  ax.set_xlim(0, end)
  ax.grid(alpha=0.3)
  ax.legend(loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def _color(track_id: int) -> tuple[int, int, int]:
  r, g, b = colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.85, 1.0)
  return int(b * 255), int(g * 255), int(r * 255)


class AnnotatedVideo:
  """Writes frames with each hit track's box, id, class, score, a short trail and the counts."""

  def __init__(self, path: str, fps: float, frame_step: int, size: tuple[int, int]):
    self._writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps / frame_step, size)
    if not self._writer.isOpened():
      raise UserError(f"{path}: cannot open an mp4v video writer; rerun with --no_video")
    self._trail = max(2, round(TRAIL_SECONDS * fps))  # in frames of the video timeline

  def write(self, frame: int, frame_bgr: np.ndarray, tracks: Sequence[schema.Track],
            counts: dict[str, int]) -> None:
    """Draws on a copy of frame `frame` (0-based index) and appends it."""
    image = frame_bgr.copy()
    for t in tracks:
      if not t.frames or t.frames[-1] != frame:
        continue
      color = _color(t.track_id)
      recent = [(b[0] + b[2] / 2, b[1] + b[3] / 2) for f, b in zip(t.frames, t.boxes)
                if frame - f < self._trail]
      if len(recent) > 1:
        cv2.polylines(image, [np.round(recent).astype(np.int32)], False, color, 2, cv2.LINE_AA)
      x, y, w, h = (int(round(v)) for v in t.boxes[-1])
      cv2.rectangle(image, (x, y), (x + w, y + h), color, 2)
      label = f"{t.track_id} {schema.CATEGORY_NAMES[t.category_id]} {t.scores[-1]:.2f}"
      cv2.putText(image, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
                  cv2.LINE_AA)
    text = "  ".join(f"{name}: {n}" for name, n in counts.items())
    for color, thickness in (((0, 0, 0), 4), ((255, 255, 255), 2)):  # outlined text
      cv2.putText(image, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, color, thickness,
                  cv2.LINE_AA)
    self._writer.write(image)

  def close(self) -> None:
    self._writer.release()
