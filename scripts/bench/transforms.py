"""Transformed copies of a challenge split (video + matching ground truth) for robustness checks
(scripts/bench/bench_robustness.py; lab code, not part of the mottr package).

  out = build_copy(root, "val", "stride2", "/tmp/robust/stride2")  # -> a challenge-layout root

Variants (`VARIANTS`): lighting (`dark` x0.45, `dim` x0.7, `bright` x1.6 clipped), sensor noise
plus heavy compression (`noise_jpeg`: Gaussian noise sigma 12, then JPEG quality 20, per frame), a
hall laid out the other way round (`mirror`: every frame flipped left-right, the boxes with it;
objects still fall down, so the true counts stay) and lower frame rates (`stride2`, `stride3`:
every 2nd / 3rd frame -> a 15 / 10 FPS video). Photometric copies keep the annotations as they
are. A strided copy keeps the frames i with
(N - 1 - i) % stride == 0, so it ends on the original's last frame (a track still in view there
is judged on the same final frame); its mp4 is written at fps / stride, `images` are renumbered
1..M (image_id = new frame index + 1) and the annotations of the kept frames keep their boxes and
track ids (annotation ids renumbered from 0 in frame order). `info.fps` holds the copy's frame
rate and `info.transform` what it was built from.

Every copy is re-encoded (mp4v), as the original is. Frames are streamed (constant memory) and
both files are written atomically, the annotations last: a copy whose annotation file records
the same transform is complete and is reused (`build_copy(..., reuse=True)`).
"""
import dataclasses
import json
import os
import shutil
from typing import Any, Iterator

import cv2
import numpy as np

from mottr import schema
from mottr.schema import UserError


@dataclasses.dataclass(frozen=True)
class Variant:
  """One transform: a left-right flip, a brightness gain, then Gaussian noise, then JPEG, on every
  kept frame."""
  flip: bool = False  # mirror frames and boxes left-right
  gain: float = 1.0  # pixel values are multiplied by this and clipped to 0..255
  noise_sigma: float = 0.0  # grey levels
  jpeg_quality: int | None = None
  stride: int = 1  # keep every stride-th frame


VARIANTS = {
    "dark": Variant(gain=0.45),
    "dim": Variant(gain=0.7),
    "bright": Variant(gain=1.6),
    "noise_jpeg": Variant(noise_sigma=12.0, jpeg_quality=20),
    "mirror": Variant(flip=True),
    "stride2": Variant(stride=2),
    "stride3": Variant(stride=3),
}


def variant(name: str) -> Variant:
  if name not in VARIANTS:
    raise UserError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
  return VARIANTS[name]


def transform_frame(rgb: np.ndarray, v: Variant, rng: np.random.Generator) -> np.ndarray:
  """The per-frame part of a variant applied to one RGB uint8 frame (a new array)."""
  out = np.ascontiguousarray(rgb[:, ::-1]) if v.flip else rgb
  if v.gain != 1.0:
    lut = np.clip(np.rint(np.arange(256) * v.gain), 0, 255).astype(np.uint8)
    out = cv2.LUT(out, lut)
  if v.noise_sigma:
    noisy = out.astype(np.float32) + rng.standard_normal(out.shape, np.float32) * np.float32(
        v.noise_sigma)
    out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
  if v.jpeg_quality is not None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, v.jpeg_quality])
    assert ok
    out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
  return out


def kept_frames(num_frames: int, stride: int) -> range:
  """0-based frames a strided copy keeps: every stride-th, ending on the last frame."""
  return range((num_frames - 1) % stride, num_frames, stride) if num_frames > 0 else range(0)


def mirrored(coco: dict[str, Any]) -> dict[str, Any]:
  """The annotations of the left-right mirrored frames: each box's x becomes width - x - w."""
  widths = {im["id"]: im["width"] for im in coco["images"]}
  def flip(a: dict) -> dict:
    x, y, w, h = a["bbox"]
    return dict(a, bbox=[widths[a["image_id"]] - x - w, y, w, h])
  return dict(coco, annotations=[flip(a) for a in coco["annotations"]])


def transform_annotations(coco: dict[str, Any], v: Variant, fps: float,
                          max_frames: int | None = None) -> dict[str, Any]:
  """The ground truth of a copy: the first max_frames frames, then every stride-th (see
  `kept_frames`), renumbered; boxes (mirrored with the frames) and track ids unchanged;
  `info.fps` = fps / stride."""
  coco = mirrored(coco) if v.flip else coco
  images = coco["images"][:max_frames]
  new_index = {images[i]["id"]: j for j, i in enumerate(kept_frames(len(images), v.stride))}
  anns = sorted((a for a in coco["annotations"] if a["image_id"] in new_index),
                key=lambda a: new_index[a["image_id"]])  # stable: file order within a frame
  out = {k: val for k, val in coco.items() if k not in ("images", "annotations", "info")}
  out["info"] = dict(coco.get("info") or {}, fps=fps / v.stride)
  out["images"] = [dict(images[i], id=j + 1, file_name=schema.file_name(j))
                   for j, i in enumerate(kept_frames(len(images), v.stride))]
  out["annotations"] = [dict(a, id=k, image_id=new_index[a["image_id"]] + 1)
                        for k, a in enumerate(anns)]
  return out


def _read_frames(path: str, count: int) -> Iterator[np.ndarray]:
  """The first `count` frames of a video, RGB."""
  cap = cv2.VideoCapture(path)
  try:
    for index in range(count):
      ok, bgr = cap.read()
      if not ok:
        raise UserError(f"{path}: frame {index} cannot be decoded, but {count} are expected; "
                        "re-encode the video")
      yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
  finally:
    cap.release()


def container_fps(path: str) -> float:
  """The container's frame rate (schema.FPS where it reports none)."""
  cap = cv2.VideoCapture(path)
  try:
    fps = cap.get(cv2.CAP_PROP_FPS)
  finally:
    cap.release()
  return fps if 0 < fps < 1000 else schema.FPS


def _record(root: str, split: str, name: str, v: Variant, seed: int,
            max_frames: int | None) -> dict[str, Any]:
  """What a copy is built from: compared to reuse a cached copy."""
  stat = os.stat(schema.video_path(root, split))
  ann_stat = os.stat(schema.annotation_path(root, split))
  return {"variant": name, **dataclasses.asdict(v), "seed": seed, "max_frames": max_frames,
          "source": os.path.abspath(schema.video_path(root, split)),
          "source_size": stat.st_size, "source_mtime": stat.st_mtime,
          "annotations_size": ann_stat.st_size, "annotations_mtime": ann_stat.st_mtime}


def _cached(out_root: str, split: str, record: dict[str, Any]) -> dict[str, Any] | None:
  path = schema.annotation_path(out_root, split)
  if not os.path.isfile(path) or not os.path.isfile(schema.video_path(out_root, split)):
    return None
  try:
    with open(path) as f:
      coco = json.load(f)
  except (OSError, json.JSONDecodeError, UnicodeDecodeError):
    return None
  return coco if (coco.get("info") or {}).get("transform") == record else None


def build_copy(root: str, split: str, name: str, out_root: str, *, seed: int = 0,
               max_frames: int | None = None, reuse: bool = True) -> dict[str, Any]:
  """Writes the `name` copy of a split (its first max_frames frames) as `split` of out_root.

  Returns the copy's annotations. With reuse, an existing copy built from the same source and
  parameters is returned without rewriting it.
  """
  v = variant(name)
  coco = schema.validate_root(root, split)
  src = schema.video_path(root, split)
  record = _record(root, split, name, v, seed, max_frames)
  if reuse and (cached := _cached(out_root, split, record)) is not None:
    return cached
  n = len(coco["images"][:max_frames])
  out = transform_annotations(coco, v, container_fps(src), max_frames)
  out["info"]["transform"] = record
  rng = np.random.default_rng(seed)
  keep = set(kept_frames(n, v.stride))
  frames = (transform_frame(rgb, v, rng) for i, rgb in enumerate(_read_frames(src, n)) if i in keep)
  written = schema.write_video(schema.video_path(out_root, split), frames, out["info"]["fps"])
  if written != len(out["images"]):
    raise UserError(f"{src}: wrote {written} frames for {len(out['images'])} images")
  schema.write_annotations(schema.annotation_path(out_root, split), out)
  return out


def build_frames_copy(files: dict[int, str], name: str, out_dir: str, *, seed: int = 0) -> str:
  """Writes the `name` copy of a folder of frames ({0-based index: image file}, e.g. the real
  sparse frames) into out_dir as lossless NNNN.png with the same names; no strided variant (a
  folder of every 10th frame has no frame rate to lower; the mirror's boxes: `mirrored`).
  Replaces out_dir atomically."""
  v = variant(name)
  if v.stride != 1:
    raise UserError(f"variant {name!r} drops frames; only per-frame (photometric, mirror) variants "
                    "apply to a folder of frames")
  tmp = out_dir.rstrip("/") + ".tmp"
  if os.path.isdir(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  rng = np.random.default_rng(seed)
  for index in sorted(files):
    bgr = cv2.imread(files[index], cv2.IMREAD_COLOR)
    if bgr is None:
      raise UserError(f"{files[index]}: cannot read this image; replace or remove it")
    rgb = transform_frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), v, rng)
    stem = os.path.splitext(os.path.basename(files[index]))[0]
    cv2.imwrite(os.path.join(tmp, f"{stem}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
  if os.path.isdir(out_dir):
    shutil.rmtree(out_dir)
  os.replace(tmp, out_dir)
  return out_dir
