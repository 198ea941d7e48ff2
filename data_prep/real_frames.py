"""Real sparse frames (`frames/{split}/NNNN.jpg` + YOLO `NNNN.txt`) and a physics track linker.

The frames are every FRAME_STRIDE-th frame of a real video that holds objects; `NNNN` is
the image_id (frame index + 1) and each label line is `class cx cy w h` (normalised,
class 0 bolt, 1 nut). Val track ids come from the COCO file by IoU; train frames have
no ids, so `link_tracks` links them with the known fall physics (objects drop from rest
with constant vertical acceleration, no horizontal drift).

  python -m data_prep.real_frames --frames_dir DIR/frames --annotations DIR/annotations/instances_val.json
prints the linker's accuracy on the val frames.
"""
import dataclasses
import glob
import math
import os
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np
from scipy import optimize

from mottr import schema
from mottr.schema import UserError, run_cli

FRAME_STRIDE = 10  # frame gap between consecutive sparse frames
FALL_ACCEL = 0.41  # px/frame^2, measured on the real val annotations
REST_BOTTOM = -26.0  # px: median height of a box's bottom edge when its object is at rest
_REST_SPEED_SPREAD = 4.0  # px/frame: uncertainty of a new track's speed guessed from rest
_INFEASIBLE = 1e6


@dataclasses.dataclass(frozen=True)
class SparseFrame:
  """One labelled sparse frame."""
  image_id: int  # frame index + 1
  image_path: str
  labels: np.ndarray  # int32 [n]: 0 bolt, 1 nut (category_id - 1)
  boxes: np.ndarray  # float32 [n, 4]: normalised cxcywh

  @property
  def frame(self) -> int:
    return self.image_id - 1


def read_frames(frames_dir: str, split: str) -> list[SparseFrame]:
  """All labelled frames of `frames_dir/split`, in frame order."""
  split_dir = os.path.join(frames_dir, split)
  paths = sorted(glob.glob(os.path.join(split_dir, "*.txt")))
  if not paths:
    raise UserError(f"{split_dir}: no NNNN.txt label files; expected frames/{{split}}/NNNN.jpg + NNNN.txt")
  frames = []
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    image_path = os.path.join(split_dir, stem + ".jpg")
    if not stem.isdigit() or not os.path.isfile(image_path):
      raise UserError(f"{path}: needs a numeric name NNNN (the image_id) and a matching {stem}.jpg")
    rows = []
    with open(path) as f:
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        parts = line.split()
        try:
          cls, box = int(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
          cls, box = -1, []
        if cls not in (0, 1) or len(box) != 4 or min(box[2:]) <= 0:
          raise UserError(f"{path}: line {n}: expected `class cx cy w h` with class 0 or 1 "
                          "and positive normalised size")
        rows.append((cls, box))
    frames.append(SparseFrame(int(stem), image_path,
                              np.array([r[0] for r in rows], np.int32),
                              np.array([r[1] for r in rows], np.float32).reshape(-1, 4)))
  return sorted(frames, key=lambda fr: fr.image_id)


def coco_ground_truth(frames: Sequence[SparseFrame]) -> dict[str, Any]:
  """The frames' labels as a COCO ground truth (xywh pixels, category = label + 1, no track ids):
  what detection scoring needs for a split that has no annotation file (the real train frames)."""
  images, annotations = [], []
  for fr in frames:
    images.append({"id": fr.image_id, "file_name": os.path.basename(fr.image_path),
                   "width": schema.WIDTH, "height": schema.HEIGHT})
    for label, box in zip(fr.labels.tolist(), _xyxy_px(fr.boxes).tolist()):
      x0, y0, x1, y1 = box
      annotations.append({"id": len(annotations), "image_id": fr.image_id, "category_id": label + 1,
                          "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
  return {"images": images, "annotations": annotations,
          "categories": [dict(c) for c in schema.CATEGORIES]}


def _xyxy_px(boxes_cxcywh: np.ndarray) -> np.ndarray:
  cx, cy, w, h = (boxes_cxcywh.astype(np.float64) * ([schema.WIDTH, schema.HEIGHT] * 2)).T
  return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Pairwise IoU of xyxy boxes [n, 4] x [m, 4]."""
  lt = np.maximum(a[:, None, :2], b[None, :, :2])
  rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.prod(np.clip(rb - lt, 0, None), -1)
  area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)
  return inter / (area(a)[:, None] + area(b)[None] - inter)


def ids_from_coco(frames: Sequence[SparseFrame], coco: dict[str, Any], source_name: str,
                  min_iou: float = 0.5) -> list[np.ndarray]:
  """Track ids of every frame's boxes, from the COCO boxes of the same image by IoU."""
  by_image = schema.annotations_by_image(coco)
  out = []
  for fr in frames:
    anns = by_image.get(fr.image_id, [])
    ids = np.full(len(fr.labels), -1, np.int32)
    if anns and len(fr.labels):
      gt = np.array([a["bbox"] for a in anns], np.float64)
      gt[:, 2:] += gt[:, :2]
      iou = _iou(_xyxy_px(fr.boxes), gt)
      iou[fr.labels[:, None] != np.array([a["category_id"] - 1 for a in anns])[None]] = 0
      rows, cols = optimize.linear_sum_assignment(-iou)
      for r, c in zip(rows, cols):
        if iou[r, c] >= min_iou:
          ids[r] = anns[c]["track_id"]
    if (ids < 0).any():
      label_path = os.path.splitext(fr.image_path)[0] + ".txt"
      raise UserError(f"{label_path}: box {int(np.argmax(ids < 0))} matches no box of "
                      f"image_id {fr.image_id} in {source_name}; are they the same video?")
    out.append(ids)
  return out


@dataclasses.dataclass
class _Track:
  track_id: int
  label: int
  frame: int  # frame of the last observation
  box: np.ndarray  # last box, xyxy px
  velocity: float  # vertical px/frame at `frame`
  velocity_known: bool = False  # False: guessed from rest (one observation only)


def _valid_edges(box: np.ndarray) -> tuple[bool, bool]:
  """Whether the top / bottom edge of an xyxy box is the object's (not clipped by the frame)."""
  return bool(box[1] > schema.EDGE_TOL_PX), bool(box[3] < schema.HEIGHT - schema.EDGE_TOL_PX)


def _velocity_from_rest(box: np.ndarray, accel: float) -> float:
  """Speed of an object first seen at `box`, having fallen from rest."""
  return math.sqrt(2 * accel * max(box[3] - REST_BOTTOM, 0.0))


def _velocity(track: _Track, frame: int, box: np.ndarray, accel: float) -> float:
  """Speed at `frame` of a track last seen at `track.frame` and now observed at `box`."""
  dt = frame - track.frame
  for edge, (old_ok, new_ok) in ((3, (_valid_edges(track.box)[1], _valid_edges(box)[1])),
                                 (1, (_valid_edges(track.box)[0], _valid_edges(box)[0]))):
    if old_ok and new_ok:
      return (box[edge] - track.box[edge]) / dt + accel * dt / 2
  return track.velocity + accel * dt


def _cost(track: _Track, frame: int, box: np.ndarray, label: int, accel: float,
          max_dx: float, max_dy: float) -> float:
  if label != track.label:
    return _INFEASIBLE
  dt = frame - track.frame
  shift = track.velocity * dt + accel * dt * dt / 2
  # An object entering the frame may pivot about one end: compare the closest of its
  # left edge, right edge and centre.
  dx = min(abs(box[0] - track.box[0]), abs(box[2] - track.box[2]),
           abs((box[0] + box[2] - track.box[0] - track.box[2]) / 2))
  dys = [abs(track.box[e] + shift - box[e]) for e, (old_ok, new_ok)
         in zip((1, 3), zip(_valid_edges(track.box), _valid_edges(box))) if old_ok and new_ok]
  gate_dy = max_dy + (0.0 if track.velocity_known else _REST_SPEED_SPREAD * dt)
  if not dys or dx > max_dx or min(dys) > gate_dy:
    return _INFEASIBLE
  return dx + min(dys)


def link_tracks(frames: Sequence[SparseFrame], *, accel: float = FALL_ACCEL,
                max_missed: int = 1, max_dx: float = 30.0, max_dy: float = 60.0) -> list[np.ndarray]:
  """Links the boxes of sparse frames into tracks; returns track ids (1, 2, ... in order
  of first appearance) per frame, aligned with each frame's boxes.

  Each pair of frames is matched by the Hungarian algorithm on |dx| + |dy| between a box
  and a track's predicted position y + v*dt + a*dt^2/2 (same class, gated), comparing an
  edge (top or bottom) that the frame does not clip in both. A track's speed comes from
  its last two boxes, or for a new track from the height it fell from rest (with a wider
  gate: objects come to rest at different heights). A track may miss `max_missed`
  consecutive sampled frames.
  """
  active: list[_Track] = []
  out = []
  next_id = 1
  prev_frame = None
  for fr in frames:
    if prev_frame is not None:
      gap_limit = (max_missed + 1) * FRAME_STRIDE
      active = [t for t in active if fr.frame - t.frame <= gap_limit]
    boxes = _xyxy_px(fr.boxes)
    ids = np.zeros(len(boxes), np.int32)
    cost = np.array([[_cost(t, fr.frame, b, int(l), accel, max_dx, max_dy)
                      for b, l in zip(boxes, fr.labels)] for t in active]).reshape(len(active), len(boxes))
    matched = set()
    for r, c in zip(*optimize.linear_sum_assignment(cost)):
      if cost[r, c] < _INFEASIBLE:
        t = active[r]
        t.velocity = _velocity(t, fr.frame, boxes[c], accel)
        t.velocity_known = True
        t.frame, t.box = fr.frame, boxes[c]
        ids[c] = t.track_id
        matched.add(c)
    for c in range(len(boxes)):
      if c not in matched:
        active.append(_Track(next_id, int(fr.labels[c]), fr.frame, boxes[c],
                             _velocity_from_rest(boxes[c], accel)))
        ids[c] = next_id
        next_id += 1
    out.append(ids)
    prev_frame = fr.frame
  return out


def _links(frames: Sequence[SparseFrame], ids: Sequence[np.ndarray]) -> set[tuple[int, int, int]]:
  """(frame, box index, box index in the frame FRAME_STRIDE later) for every id kept."""
  by_frame = {fr.frame: i for i, fr in enumerate(frames)}
  links = set()
  for i, fr in enumerate(frames):
    j = by_frame.get(fr.frame + FRAME_STRIDE)
    if j is None:
      continue
    later = {int(t): k for k, t in enumerate(ids[j])}
    links.update((fr.frame, a, later[int(t)]) for a, t in enumerate(ids[i]) if int(t) in later)
  return links


def link_accuracy(frames: Sequence[SparseFrame], true_ids: Sequence[np.ndarray],
                  pred_ids: Sequence[np.ndarray]) -> dict[str, float]:
  """Consecutive links (an object in frame t -> the same object in frame t + FRAME_STRIDE):
  `recall` = fraction of true links the linker made, `precision` = fraction of its links
  that are true."""
  true, pred = _links(frames, true_ids), _links(frames, pred_ids)
  hits = len(true & pred)
  return {"true_links": len(true), "predicted_links": len(pred),
          "recall": hits / max(len(true), 1), "precision": hits / max(len(pred), 1)}


def split_track_ids(frames_dir: str, split: str, annotations: str | None = None
                    ) -> tuple[list[SparseFrame], list[np.ndarray]]:
  """Frames of a split with their track ids: from `annotations` (COCO of the same
  video) when given, otherwise from the linker."""
  frames = read_frames(frames_dir, split)
  if annotations is None:
    return frames, link_tracks(frames)
  return frames, ids_from_coco(frames, schema.load_coco(annotations), annotations)


def _define_flags() -> None:
  """CLI flags, defined only when this module runs as a program (it is imported as a library too)."""
  flags.DEFINE_string("frames_dir", None, "Folder with {train,val}/NNNN.jpg+txt.")
  flags.DEFINE_string("annotations", None, "COCO file with the true track ids.")
  flags.DEFINE_string("split", "val", "Split of frames_dir the annotations belong to.")


def main(argv: list[str]) -> None:
  del argv
  f = flags.FLAGS
  if not f.frames_dir or not f.annotations:
    raise UserError("--frames_dir and --annotations are required")
  frames, true_ids = split_track_ids(f.frames_dir, f.split, f.annotations)
  acc = link_accuracy(frames, true_ids, link_tracks(frames))
  num_tracks = len({int(t) for ids in true_ids for t in ids})
  print(f"{f.split}: {len(frames)} frames, {num_tracks} tracks, {acc['true_links']} true links: "
        f"linker recall {acc['recall']:.4f} precision {acc['precision']:.4f} "
        f"({acc['predicted_links']} links made)")


if __name__ == "__main__":
  _define_flags()
  app.run(run_cli(main))
