"""The file format at the base of mottr: constants, the one `Track` type, COCO <-> tracks, load and
validate, and the one-line `UserError` (with the CLI boundary that prints it).

Everything else builds on this module, and `data_prep` imports nothing else from `mottr`.

A challenge-layout root holds `annotations/instances_{split}.json` (COCO + `track_id`)
beside `images/{split}/{split}.mp4`. `image_id` = 0-based frame index + 1 and
`file_name` = "%04d.jpg" % frame index. Boxes are COCO `xywh` in pixels in files.
"""
import collections
import contextlib
import dataclasses
import glob
import json
import math
import os
import sys
import tempfile
from typing import Any, Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np


class UserError(Exception):
  """Bad input from a user: printed as one line, exit status 2, no traceback."""


def run_cli(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """Wraps an absl `main` so that a UserError becomes one line on stderr and exit 2."""

  def wrapped(argv: list[str]) -> None:
    try:
      main(argv)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
  """Silences native (FFmpeg) messages on fd 2, e.g. while a damaged video is decoded."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)


WIDTH = 640
HEIGHT = 640
FPS = 30.0
SPLITS = ("train", "val", "test")
CATEGORIES = (
    {"supercategory": "none", "id": 1, "name": "bolt"},
    {"supercategory": "none", "id": 2, "name": "nut"},
)
CATEGORY_NAMES = {c["id"]: c["name"] for c in CATEGORIES}  # 1 -> "bolt", 2 -> "nut"
NUM_CLASSES = len(CATEGORIES)  # model class index = category_id - 1
EDGE_TOL_PX = 2.0  # a box within this many pixels of a frame edge touches it
BOX_TOL_PX = 0.01  # how far a box may stick out of the frame (float rounding)
MAX_ID = 2**63 - 1  # ids are stored as 64-bit integers
REQUIRED_ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox", "track_id")


def annotation_path(root: str, split: str) -> str:
  return os.path.join(root, "annotations", f"instances_{split}.json")


def video_path(root: str, split: str) -> str:
  return os.path.join(root, "images", split, f"{split}.mp4")


def file_name(frame_index: int) -> str:
  return "%04d.jpg" % frame_index


@dataclasses.dataclass(frozen=True)
class Frame:
  """One decoded video frame and the annotations of its image."""
  index: int  # 0-based frame index (image_id - 1)
  image: np.ndarray  # RGB uint8 [HEIGHT, WIDTH, 3]
  annotations: list[dict[str, Any]]


def present_splits(root: str) -> list[str]:
  """Splits that have an annotation file under `root`, known splits first."""
  found = {os.path.basename(p)[len("instances_"):-len(".json")]
           for p in glob.glob(annotation_path(root, "*"))}
  return [s for s in SPLITS if s in found] + sorted(found - set(SPLITS))


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
  return (isinstance(v, (int, float)) and not isinstance(v, bool)
          and math.isfinite(v))


def validate_annotations(coco: Any, source_name: str,
                         num_frames: int | None = None) -> None:
  """Checks a challenge COCO dict; raises a one-line UserError on the first problem.

  Args:
    coco: the parsed JSON.
    source_name: file name used in error messages.
    num_frames: number of frames of the matching video, when known.
  """
  def fail(record: str, what: str) -> None:
    raise UserError(f"{source_name}: {record}: {what}")

  if not isinstance(coco, dict):
    fail("top level", "not a JSON object; expected COCO with images, annotations, categories")
  for key in ("images", "annotations", "categories"):
    if not isinstance(coco.get(key), list):
      fail(key, "missing or not a list; expected the COCO challenge schema")

  for i, cat in enumerate(coco["categories"]):
    if not isinstance(cat, dict) or "id" not in cat:
      fail(f"categories[{i}]", "not an object with an `id`")
    if not _is_int(cat["id"]):
      fail(f"categories[{i}]", f"id {cat['id']!r} is not an integer")
    if cat["id"] not in CATEGORY_NAMES or cat.get("name") != CATEGORY_NAMES[cat["id"]]:
      fail(f"categories[{i}] (id {cat['id']})",
           f"unknown category {cat.get('name')!r}; only {CATEGORY_NAMES} are allowed")

  images = coco["images"]
  for i, img in enumerate(images):
    if not isinstance(img, dict):
      fail(f"images[{i}]", "not a JSON object")
    rec = f"images[{i}] (id {img.get('id')})"
    if img.get("id") != i + 1 or img.get("file_name") != file_name(i):
      fail(rec, f"expected id {i + 1} and file_name {file_name(i)!r} "
           "(image_id = frame index + 1, images in frame order)")
    if img.get("width") != WIDTH or img.get("height") != HEIGHT:
      fail(rec, f"size {img.get('width')}x{img.get('height')}, expected {WIDTH}x{HEIGHT}")
  if num_frames is not None and len(images) != num_frames:
    fail("images", f"{len(images)} images but the video has {num_frames} frames; "
         "there must be one image per frame")

  seen_ids: set[int] = set()
  seen_objects: set[tuple[int, int]] = set()
  track_category: dict[int, tuple[int, int]] = {}
  for i, ann in enumerate(coco["annotations"]):
    if not isinstance(ann, dict):
      fail(f"annotations[{i}]", "not a JSON object")
    rec = f"annotations[{i}] (id {ann['id']})" if "id" in ann else f"annotations[{i}]"
    missing = [k for k in REQUIRED_ANNOTATION_KEYS if k not in ann]
    if missing:
      fail(rec, f"missing {', '.join(missing)}")
    for key in ("id", "image_id", "category_id", "track_id"):
      if not _is_int(ann[key]):
        fail(rec, f"{key} {ann[key]!r} is not an integer")
      if not -MAX_ID <= ann[key] <= MAX_ID:
        fail(rec, f"{key} {ann[key]} is out of range (at most {MAX_ID} in size)")
    if "score" in ann and not _is_number(ann["score"]):
      fail(rec, f"score {ann['score']!r} is not a finite number")
    if ann["id"] in seen_ids:
      fail(rec, "duplicate annotation id")
    seen_ids.add(ann["id"])
    if not 1 <= ann["image_id"] <= len(images):
      fail(rec, f"image_id {ann['image_id']} has no image (images are 1..{len(images)})")
    if ann["category_id"] not in CATEGORY_NAMES:
      fail(rec, f"unknown category_id {ann['category_id']}; only {CATEGORY_NAMES} are allowed")
    bbox = ann["bbox"]
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
      fail(rec, f"bbox {bbox!r} is not 4 finite numbers [x, y, w, h]")
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
      fail(rec, f"bbox {bbox} has non-positive size")
    if (x < -BOX_TOL_PX or y < -BOX_TOL_PX or x + w > WIDTH + BOX_TOL_PX
        or y + h > HEIGHT + BOX_TOL_PX):
      fail(rec, f"bbox {bbox} lies outside the {WIDTH}x{HEIGHT} frame; clip it to the frame")
    obj = (ann["image_id"], ann["track_id"])
    if obj in seen_objects:
      fail(rec, f"track_id {ann['track_id']} appears twice in image_id {ann['image_id']}")
    seen_objects.add(obj)
    first = track_category.setdefault(ann["track_id"], (ann["category_id"], ann["id"]))
    if first[0] != ann["category_id"]:
      fail(rec, f"track_id {ann['track_id']} changes category from {first[0]} "
           f"(annotation id {first[1]}) to {ann['category_id']}")


def load_coco(path: str, num_frames: int | None = None) -> dict[str, Any]:
  """Reads and validates a challenge COCO file (no video needed)."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: missing file")
  try:
    with open(path) as f:
      coco = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"{path}: not valid JSON ({e})") from None
  except RecursionError:
    raise UserError(f"{path}: JSON nested too deeply to be the COCO challenge schema") from None
  validate_annotations(coco, path, num_frames)
  return coco


def load_annotations(root: str, split: str, num_frames: int | None = None) -> dict[str, Any]:
  """Reads and validates `annotations/instances_{split}.json` of a challenge root."""
  path = annotation_path(root, split)
  if not os.path.isfile(path):
    raise UserError(f"{path}: missing file; expected the challenge layout "
                    "annotations/instances_{split}.json")
  return load_coco(path, num_frames)


def count_video_frames(path: str) -> int:
  """Checks that `path` is a readable 640x640 video whose frames all decode (every one is read,
  a header can announce frames a truncated file lacks); returns its frame count."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: missing file; expected the challenge layout "
                    "images/{split}/{split}.mp4")
  cap = cv2.VideoCapture(path)
  try:
    if not cap.isOpened():
      raise UserError(f"{path}: unreadable video; re-encode it as mp4")
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    if n <= 0 or not ok:
      raise UserError(f"{path}: video has no readable frames")
    if frame.shape[:2] != (HEIGHT, WIDTH):
      raise UserError(f"{path}: frames are {frame.shape[1]}x{frame.shape[0]}, "
                      f"expected {WIDTH}x{HEIGHT}")
    decoded = 1  # the header's count is not trusted: a truncated file announces more
    with quiet_native_stderr():  # FFmpeg reports a damaged packet on fd 2
      while cap.grab():
        decoded += 1
    if decoded != n:
      raise UserError(f"{path}: {decoded} frames decode but the header announces {n} "
                      "(a truncated or damaged file); re-encode or replace it")
    return n
  finally:
    cap.release()


def validate_root(root: str, split: str) -> dict[str, Any]:
  """Validates one split of a challenge root (video and JSON); returns the COCO dict."""
  ann_path, vid_path = annotation_path(root, split), video_path(root, split)
  for path in (ann_path, vid_path):
    if not os.path.isfile(path):
      raise UserError(f"{path}: missing file; a challenge root needs "
                      f"{os.path.relpath(ann_path, root)} and {os.path.relpath(vid_path, root)}")
  return load_annotations(root, split, num_frames=count_video_frames(vid_path))


def annotations_by_image(coco: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
  """Annotations grouped by `image_id`, each group in file order."""
  by_image = collections.defaultdict(list)
  for ann in coco["annotations"]:
    by_image[ann["image_id"]].append(ann)
  return dict(by_image)


def iter_frames(root: str, split: str) -> Iterator[Frame]:
  """Validates a split, then streams its frames one at a time with their annotations."""
  coco = validate_root(root, split)
  by_image = annotations_by_image(coco)
  path = video_path(root, split)
  cap = cv2.VideoCapture(path)
  try:
    for index in range(len(coco["images"])):
      ok, bgr = cap.read()
      if not ok:
        raise UserError(f"{path}: frame {index} cannot be decoded, but the annotations "
                        f"list {len(coco['images'])} frames; re-encode the video")
      yield Frame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), by_image.get(index + 1, []))
  finally:
    cap.release()


def write_annotations(path: str, coco: dict[str, Any]) -> None:
  """Writes a COCO dict as JSON atomically (temp file in the same folder, then rename)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".json.tmp")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(coco, f)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def write_video(path: str, frames_rgb: Iterable[np.ndarray], fps: float = FPS) -> int:
  """Streams RGB uint8 frames into an mp4v video atomically; returns the frame count."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".mp4")
  os.close(fd)
  writer = None
  n = 0
  try:
    for rgb in frames_rgb:
      if writer is None:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                 (rgb.shape[1], rgb.shape[0]))
      writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
      n += 1
    if writer is not None:
      writer.release()
    os.replace(tmp, path)
  except BaseException:
    if writer is not None:
      writer.release()
    os.unlink(tmp)
    raise
  return n


@dataclasses.dataclass
class Track:
  """One object's life: its hit frames (0-based indices) with box (COCO xywh pixels), score and
  class index (category_id - 1), and per-class probabilities where a model gave them (ground-truth
  tracks have none). The one track type of mottr: ground truth, the MOTR tracker, the baselines."""
  track_id: int
  frames: list[int] = dataclasses.field(default_factory=list)
  boxes: list[np.ndarray] = dataclasses.field(default_factory=list)  # xywh pixels, float [4]
  scores: list[float] = dataclasses.field(default_factory=list)
  labels: list[int] = dataclasses.field(default_factory=list)  # class index = category_id - 1
  class_probs: list[np.ndarray] = dataclasses.field(default_factory=list)  # float [C] per hit
  # Per-class weights of the evidence (e.g. (1, 2.5): a nut needs 1/2.5 of a bolt's mean
  # probability); None: all 1.
  class_weights: tuple[float, ...] | None = None

  def add(self, frame: int, box: np.ndarray, score: float, label: int,
          class_probs: np.ndarray | None = None) -> None:
    self.frames.append(int(frame))
    self.boxes.append(np.asarray(box, np.float64))
    self.scores.append(float(score))
    self.labels.append(int(label))
    if class_probs is not None:
      self.class_probs.append(np.asarray(class_probs, np.float64).reshape(-1))

  def prepend(self, frame: int, box: np.ndarray, score: float, label: int,
              class_probs: np.ndarray | None = None) -> None:
    """`add` before the first hit (a frame earlier than every frame of the track)."""
    assert not self.frames or frame < self.frames[0], (frame, self.frames[:1])
    self.frames.insert(0, int(frame))
    self.boxes.insert(0, np.asarray(box, np.float64))
    self.scores.insert(0, float(score))
    self.labels.insert(0, int(label))
    if class_probs is not None:
      self.class_probs.insert(0, np.asarray(class_probs, np.float64).reshape(-1))

  def first(self, k: int) -> "Track":
    """A copy of the track cut to its first k hits."""
    return dataclasses.replace(self, frames=self.frames[:k], boxes=self.boxes[:k], scores=self.scores[:k],
                               labels=self.labels[:k], class_probs=self.class_probs[:k])

  @property
  def class_evidence(self) -> np.ndarray | None:
    """Mean per-class probability over the track's hits [C]; None when not every hit has them."""
    if not self.class_probs or len(self.class_probs) != len(self.frames):
      return None
    return np.mean(self.class_probs, axis=0)

  @property
  def category_id(self) -> int:
    """Argmax of the (weighted) class evidence over the track's life; where the hits carry no
    class probabilities (e.g. ground truth), the majority vote of the per-frame classes (ties go
    to the larger summed score)."""
    evidence = self.class_evidence
    if evidence is not None:
      if self.class_weights is not None:
        evidence = evidence * np.asarray(self.class_weights, np.float64)
      return int(np.argmax(evidence)) + 1
    votes = collections.Counter(self.labels)
    score_sum = collections.defaultdict(float)
    for label, score in zip(self.labels, self.scores):
      score_sum[label] += score
    return max(votes, key=lambda label: (votes[label], score_sum[label])) + 1


def tracks_from_coco(coco: dict[str, Any]) -> list[Track]:
  """Tracks of a challenge-schema dict (ground truth or our tracks.json), by track id.

  Frames are 0-based (image_id - 1); an annotation's `score` is kept, 1.0 where absent.
  """
  by_id = collections.defaultdict(list)
  for ann in coco["annotations"]:
    by_id[int(ann["track_id"])].append(ann)
  tracks = []
  for track_id in sorted(by_id):
    track = Track(track_id)
    for ann in sorted(by_id[track_id], key=lambda a: a["image_id"]):
      track.add(ann["image_id"] - 1, ann["bbox"], ann.get("score", 1.0), ann["category_id"] - 1)
    tracks.append(track)
  return tracks


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
      "images": [{"id": f + 1, "file_name": file_name(f), "width": width,
                  "height": height} for f in frames],
      "annotations": annotations,
      "categories": [dict(c) for c in CATEGORIES],
  }


def coco_fps(coco: dict[str, Any]) -> float:
  """Frame rate of the video a challenge-schema dict annotates: its `info.fps`, else 30."""
  return float((coco.get("info") or {}).get("fps") or FPS)
