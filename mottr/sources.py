"""Frame sources: a video file, a webcam index, a stream URL or a folder of numbered frames, each
streamed as (0-based frame index, BGR frame) with the timeline it comes from."""
import dataclasses
import glob
import os
import re
from typing import Iterator

import cv2
import numpy as np

from mottr import counting
from mottr import schema
from mottr.schema import UserError, quiet_native_stderr

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_FPS = 1000.0  # highest --fps taken (a container rate above it is ignored as bogus)


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


def _open_capture(spec: str, fps: float | None, start: int) -> FrameSource:
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
  for skipped in range(start):  # decoded in order (so exact), not converted
    if not cap.grab():
      cap.release()
      raise UserError(f"{spec}: cannot start at frame {start} (0-based): it ends after {skipped + 1} frames")
  if start:
    ok, first = cap.retrieve()
    if not ok:
      cap.release()
      raise UserError(f"{spec}: frame {start} could not be decoded; check the file or re-encode it")

  def frames() -> Iterator[tuple[int, np.ndarray]]:
    try:
      yield start, first
      index = start + 1
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
                     fps=fps or (container_fps if 0 < container_fps < MAX_FPS else schema.FPS),
                     frame_step=1, width=first.shape[1], height=first.shape[0],
                     total=total - start if total > start and not (is_camera or is_stream) else None,
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


def _open_frames_dir(path: str, fps: float | None, start: int) -> FrameSource:
  files = frame_files(path)
  every = sorted(files)
  indices = [i for i in every if i >= start]
  if not indices:
    raise UserError(f"{path}: cannot start at frame {start} (0-based): its last frame is {every[-1]}")

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

  return FrameSource(name=os.path.basename(os.path.abspath(path)), fps=fps or schema.FPS,
                     frame_step=counting.frame_step_of(every), width=first.shape[1],
                     height=first.shape[0], total=len(indices), frames=frames())


def open_source(spec: str, fps: float | None = None, start: int = 0) -> FrameSource:
  """Opens a video file, webcam index, stream URL or frames directory; checks its first frame.
  With `start` > 0 the frames begin at 0-based frame index `start` (a folder: the first frame
  numbered from there), the earlier ones skipped undecoded where the source allows; `total` counts
  the frames from there on."""
  if fps is not None and not 0 < fps <= MAX_FPS:  # also refuses nan and inf
    raise UserError(f"--fps {fps}: must be a frame rate above 0 and at most {MAX_FPS:g}")
  if os.path.isdir(spec):
    return _open_frames_dir(spec, fps, start)
  return _open_capture(spec, fps, start)
