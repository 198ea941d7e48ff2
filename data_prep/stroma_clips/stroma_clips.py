"""TFDS builder `stroma_clips`: one array_record example per frame, in temporal order.

Source (`manual_dir`), either
  * a challenge-layout root: `annotations/instances_{split}.json` + `images/{split}/{split}.mp4`
    (the real schema.zip or `data_prep.synth`); one split per annotation file, every
    frame of the video, stride 1; or
  * a folder holding `frames/{split}/NNNN.jpg + NNNN.txt` (the real sparse frames, every
    10th frame with objects), used when no split has a video: stride 10, track ids from
    `annotations/instances_{split}.json` when present (val), else from
    `data_prep.real_frames.link_tracks`.

Record (`features.json` describes it; decode with `builder.as_data_source(split)`, no
TensorFlow needed):
  video         str    source video: "{split}" for a video, "frames/{split}" for sparse frames
  frame         int32  0-based frame index in that video (image_id - 1)
  stride        int32  frame gap between consecutive records of the video (1 video, 10 sparse)
  image         uint8  [R, R, 3] RGB when decoded, stored as JPEG; R = config resolution
  objects       Sequence (one entry per annotated object of the frame):
    bbox          float32 [4]  normalised cxcywh of the 640x640 frame (not clipped further)
    label         int32        category_id - 1 (0 bolt, 1 nut)
    track_id      int32        the object's track id within the video
    touches_edge  bool         the box is within EDGE_TOL_PX of a frame edge (partly outside)
Records of a split are sorted by frame (shuffling disabled); decoded `objects` fields are
lists of per-object values (empty lists when the frame has no object).

Build without TensorFlow (`tfds build` cannot start without it):
  python -m data_prep.stroma_clips.build --manual_dir ROOT --data_dir OUT [--config r256]
"""
import dataclasses
import os
from typing import Any, Iterator

import cv2
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_prep import real_frames
from mottr import schema
from mottr.schema import UserError

JPEG_QUALITY = 90


@dataclasses.dataclass(eq=False)
class StromaClipsConfig(tfds.core.BuilderConfig):
  """Input resolution R of the stored (square) frames."""
  resolution: int = 256


def _config(resolution: int) -> StromaClipsConfig:
  return StromaClipsConfig(name=f"r{resolution}", resolution=resolution,
                           description=f"frames resized to {resolution}x{resolution}")


def encode_image(rgb: np.ndarray, resolution: int) -> bytes:
  """Resizes an RGB frame to resolution^2 and encodes it as JPEG (RGB when decoded)."""
  if rgb.shape[:2] != (resolution, resolution):
    rgb = cv2.resize(rgb, (resolution, resolution), interpolation=cv2.INTER_AREA)
  ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  assert ok
  return buf.tobytes()


def _touches_edge(boxes_cxcywh: np.ndarray) -> np.ndarray:
  tol_x, tol_y = schema.EDGE_TOL_PX / schema.WIDTH, schema.EDGE_TOL_PX / schema.HEIGHT
  cx, cy, w, h = boxes_cxcywh.T
  return ((cx - w / 2 <= tol_x) | (cy - h / 2 <= tol_y)
          | (cx + w / 2 >= 1 - tol_x) | (cy + h / 2 >= 1 - tol_y))


def _objects(boxes_cxcywh: np.ndarray, labels: np.ndarray, track_ids: np.ndarray) -> dict[str, np.ndarray]:
  boxes = np.asarray(boxes_cxcywh, np.float32).reshape(-1, 4)
  return {"bbox": boxes, "label": np.asarray(labels, np.int32),
          "track_id": np.asarray(track_ids, np.int32), "touches_edge": _touches_edge(boxes)}


def coco_to_cxcywh(bboxes_xywh: Any) -> np.ndarray:
  """COCO xywh pixel boxes [n, 4] -> normalised cxcywh float32."""
  b = np.asarray(bboxes_xywh, np.float64).reshape(-1, 4)
  scale = np.array([schema.WIDTH, schema.HEIGHT] * 2, np.float64)
  return (np.concatenate([b[:, :2] + b[:, 2:] / 2, b[:, 2:]], 1) / scale).astype(np.float32)


def find_source(root: str) -> tuple[str, list[str]]:
  """("video", splits) for a challenge root with videos, else ("frames", splits) for a
  folder holding frames/{split}/; raises a UserError for anything else."""
  splits = schema.present_splits(root) if os.path.isdir(root) else []
  if any(os.path.isfile(schema.video_path(root, s)) for s in splits):
    return "video", splits
  frames_dir = os.path.join(root, "frames")
  sparse = sorted(d for d in (os.listdir(frames_dir) if os.path.isdir(frames_dir) else [])
                  if os.path.isdir(os.path.join(frames_dir, d)))
  if not sparse:
    raise UserError(f"{root}: neither a challenge root (annotations/instances_{{split}}.json + "
                    "images/{split}/{split}.mp4) nor a folder with frames/{split}/")
  return "frames", sparse


class StromaClips(tfds.core.GeneratorBasedBuilder):
  """Stroma challenge frames with boxes, classes and track ids (see module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [_config(256), _config(320), _config(384), _config(192), _config(128), _config(64)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Pass a challenge-layout root (annotations/instances_{split}.json +
  images/{split}/{split}.mp4) or a folder holding frames/{split}/NNNN.jpg+txt as manual_dir.
  """

  # tfds 4.9.10 resolves the default `code_path` through `importlib_resources`, which it
  # only installs on Python < 3.9; this file is the builder's code either way.
  code_path = tfds.core.utils.classproperty(classmethod(lambda cls: epath.Path(__file__)))

  def _info(self) -> tfds.core.DatasetInfo:
    r = self.builder_config.resolution
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Text(),
            "frame": tfds.features.Scalar(np.int32),
            "stride": tfds.features.Scalar(np.int32),
            "image": tfds.features.Image(shape=(r, r, 3), encoding_format="jpeg"),
            "objects": tfds.features.Sequence({
                "bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                "label": tfds.features.Scalar(np.int32),
                "track_id": tfds.features.Scalar(np.int32),
                "touches_edge": tfds.features.Scalar(np.bool_),
            }),
        }),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    root = os.fspath(dl_manager.manual_dir)
    kind, splits = find_source(root)
    return {s: self._generate_examples(root, s, sparse=kind == "frames") for s in splits}

  def _generate_examples(self, root: str, split: str, sparse: bool
                         ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(frame index, record) of one split, in frame order."""
    return self._generate_sparse(root, split) if sparse else self._generate_video(root, split)

  def _generate_video(self, root: str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    r = self.builder_config.resolution
    for fr in schema.iter_frames(root, split):
      anns = fr.annotations
      yield fr.index, {
          "video": split, "frame": fr.index, "stride": 1, "image": encode_image(fr.image, r),
          "objects": _objects(coco_to_cxcywh([a["bbox"] for a in anns]),
                              [a["category_id"] - 1 for a in anns], [a["track_id"] for a in anns]),
      }

  def _generate_sparse(self, root: str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    r = self.builder_config.resolution
    ann = schema.annotation_path(root, split)
    frames, ids = real_frames.split_track_ids(os.path.join(root, "frames"), split,
                                              ann if os.path.isfile(ann) else None)
    for fr, track_ids in zip(frames, ids):
      bgr = cv2.imread(fr.image_path)
      if bgr is None:
        raise UserError(f"{fr.image_path}: unreadable image")
      yield fr.frame, {
          "video": f"frames/{split}", "frame": fr.frame, "stride": real_frames.FRAME_STRIDE,
          "image": encode_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), r),
          "objects": _objects(fr.boxes, fr.labels, track_ids),
      }


def build(manual_dir: str, data_dir: str, config: str = "r256") -> str:
  """Prepares the dataset; returns the builder directory (for `tfds.builder_from_directory`)."""
  find_source(manual_dir)  # a clear error before TFDS starts
  builder = StromaClips(config=config, data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return os.fspath(builder.data_path)
