"""Writers of the user-facing files: counts.json, tracks.txt, tracks.json, annotated.mp4 and
counts.png.

Everything goes into one output directory that appears atomically (`atomic_output_dir`): files
are written into a temporary sibling directory that is renamed into place only on success.
"""
import colorsys
import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterator, Sequence

import cv2
import matplotlib
import numpy as np

from data_prep import challenge
from mottr.counting import Counts, Event
from mottr.errors import UserError
from mottr.tracker import Track

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

TRAIL_SECONDS = 0.5


@contextlib.contextmanager
def atomic_output_dir(path: str) -> Iterator[str]:
  """Yields a temporary directory that replaces `path` when the block succeeds.

  On any exception the temporary directory is removed, along with parent directories this
  created, so a failed run leaves nothing behind. An existing `path` is replaced as a whole.
  """
  path = os.path.abspath(path)
  parent = os.path.dirname(path)
  created = []
  probe = parent
  while not os.path.exists(probe):
    created.append(probe)
    probe = os.path.dirname(probe)
  try:
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
  except OSError as e:
    _remove_empty(created)
    why = f"{probe} is not a directory" if not os.path.isdir(probe) else e.strerror
    raise UserError(f"{path}: cannot create the output directory ({why}); "
                    "choose a writable --output_dir") from None
  try:
    yield tmp
    if os.path.isdir(path):
      old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
      os.replace(path, os.path.join(old, "previous"))
      os.replace(tmp, path)
      shutil.rmtree(old)
    else:
      os.replace(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    _remove_empty(created)
    raise


def _remove_empty(dirs: list[str]) -> None:
  for d in dirs:  # deepest first
    with contextlib.suppress(OSError):
      os.rmdir(d)


def write_json(path: str, obj: Any) -> None:
  with open(path, "w") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")


def counts_record(video: str, frames: int, fps: float, frame_step: int, counts: Counts) -> dict:
  """The content of counts.json; event frames are 1-based like image_id."""
  return {
      "video": video,
      "frames": frames,
      "fps": fps,
      "frame_step": frame_step,
      "counts": dict(counts.counts),
      "events": [{"frame": e.frame + 1, "time_s": round(e.frame / fps, 3), "track_id": e.track_id,
                  "category": e.category} for e in counts.events],
  }


def tracks_to_coco(tracks: Sequence[Track], frames: Sequence[int], width: int, height: int) -> dict:
  """The challenge's COCO schema (+ per-box `score`) for tracks over the given 0-based frames."""
  rows = sorted(((f, t.track_id, t.category_id, box, score) for t in tracks
                 for f, box, score in zip(t.frames, t.boxes, t.scores)), key=lambda r: r[:2])
  annotations = []
  for i, (f, track_id, category_id, box, score) in enumerate(rows):
    x, y, w, h = (round(float(v), 2) for v in box)
    annotations.append({
        "id": i, "image_id": f + 1, "category_id": category_id, "segmentation": [],
        "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0, "track_id": track_id,
        "score": round(float(score), 4)})
  return {
      "images": [{"id": f + 1, "file_name": challenge.file_name(f), "width": width,
                  "height": height} for f in frames],
      "annotations": annotations,
      "categories": [dict(c) for c in challenge.CATEGORIES],
  }


def write_mot_txt(path: str, coco: dict) -> None:
  """MOTChallenge rows `frame,id,x,y,w,h,score,-1,-1,-1` (1-based frames) of tracks_to_coco."""
  with open(path, "w") as f:
    for a in coco["annotations"]:
      x, y, w, h = a["bbox"]
      f.write(f"{a['image_id']},{a['track_id']},{x:.2f},{y:.2f},{w:.2f},{h:.2f},"
              f"{a['score']:.4f},-1,-1,-1\n")


def plot_cumulative_counts(path: str, series: dict[str, Sequence[Event]], num_frames: int,
                           fps: float) -> None:
  """Step plot of the cumulative count per category for each named series of events."""
  fig, ax = plt.subplots(figsize=(8, 4))
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
  plt.close(fig)


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

  def write(self, frame: int, frame_bgr: np.ndarray, tracks: Sequence[Track],
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
      label = f"{t.track_id} {challenge.CATEGORY_NAMES[t.category_id]} {t.scores[-1]:.2f}"
      cv2.putText(image, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
                  cv2.LINE_AA)
    text = "  ".join(f"{name}: {n}" for name, n in counts.items())
    for color, thickness in (((0, 0, 0), 4), ((255, 255, 255), 2)):  # outlined text
      cv2.putText(image, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, color, thickness,
                  cv2.LINE_AA)
    self._writer.write(image)

  def close(self) -> None:
    self._writer.release()
