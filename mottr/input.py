"""Grain input pipeline: per-frame `stroma_clips` records -> batches of aligned clips.

A clip is `clip_len` records of one video whose frame gaps all equal
`stride * record_stride` (stride drawn from `strides`; record_stride is the record's
`stride` field: 1 for videos, 10 for the real sparse frames). A batch is a dict of numpy
arrays (B batch, T clip_len, M max_objects, H = W = image_size):

  image         uint8   [B, T, H, W, 3]  RGB
  boxes         float32 [B, T, M, 4]     normalised cxcywh (0 where mask is False)
  labels        int32   [B, T, M]        0 bolt, 1 nut
  mask          bool    [B, T, M]        object m is visible in frame t
  touches_edge  bool    [B, T, M]
  gap           float32 [B]              frames of 1/30 s between consecutive clip frames

Slot m is the same physical object in every frame of a clip: track ids are remapped per
clip to 0..M-1 in order of first appearance (within a frame, in record order); objects
beyond M are dropped. Everything is deterministic for a fixed seed. `augment` here is the host
part (flip, JPEG); the photometric part runs in the train step (`mottr.augment`). Training
reads frames from a `FrameCache` (decoded once, gathered by index).

  clips = make_clips(FrameCache(open_data_source(dir, "train"), 256), clip_len=5,
                     strides=(1, 2, 4), max_objects=12, seed=0, augment=True, image_size=256)
  ds = mix_clip_datasets([clips], [1.0], batch_size=8)  # several sources: in proportion to weights
  for batch in ds: ...          # infinite; ds.to_iter_dataset(grain.ReadOptions(...)) to prefetch
"""
import dataclasses
import glob
import os
from typing import Any, Sequence

import cv2
import grain
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.data_sources import base as tfds_data_sources

from mottr.schema import UserError

DATASET_NAME = "stroma_clips"


def open_data_source(path: str, split: str, config: str = "r256") -> Sequence[dict[str, Any]]:
  """Random-access records of a prepared `stroma_clips` split, without the builder code.

  Args:
    path: the builder directory (holding `dataset_info.json`), or the TFDS data_dir
      it was built into (then `stroma_clips/{config}/` newest version is used).
    split: e.g. "train".
    config: builder config name when `path` is a data_dir.
  """
  if not os.path.isfile(os.path.join(path, "dataset_info.json")):
    versions = glob.glob(os.path.join(path, DATASET_NAME, config, "*", "dataset_info.json"))
    if not versions:
      raise UserError(f"{path}: no prepared {DATASET_NAME}/{config} dataset; build it with "
                      "python -m data_prep.stroma_clips.build")
    version = lambda p: tuple(int(v) for v in os.path.basename(os.path.dirname(p)).split("."))
    path = os.path.dirname(max(versions, key=version))
  builder = tfds.builder_from_directory(path)
  if split not in builder.info.splits:
    raise UserError(f"{path}: no split {split!r}; it has {sorted(builder.info.splits)}")
  return builder.as_data_source(split)


@dataclasses.dataclass(frozen=True)
class RecordIndex:
  """Per-record video id, frame index and record stride of a data source."""
  video: np.ndarray  # int64 [n], ids of the `video` names in order of appearance
  frame: np.ndarray  # int64 [n]
  stride: np.ndarray  # int64 [n]

  @classmethod
  def of(cls, data_source: Sequence[dict[str, Any]]) -> "RecordIndex":
    """Reads the index fields of every record (images are not decoded for TFDS sources)."""
    if isinstance(data_source, tfds_data_sources.BaseDataSource):
      data_source = dataclasses.replace(data_source, decoders={"image": tfds.decode.SkipDecoding()})
    names: dict[Any, int] = {}
    rows = [(names.setdefault(r["video"], len(names)), r["frame"], r["stride"])
            for r in (data_source[i] for i in range(len(data_source)))]
    video, frame, stride = np.array(rows, np.int64).reshape(-1, 3).T
    return cls(video, frame, stride)

  def clip_starts(self, clip_len: int, stride: int) -> np.ndarray:
    """Records i such that i, i+stride, ... (clip_len records) form a clip."""
    n = len(self.frame)
    ok = np.zeros(n, bool)  # record j and j + stride are consecutive at this stride
    if stride < n:
      j = np.arange(n - stride)
      ok[j] = ((self.video[j + stride] == self.video[j])
               & (self.frame[j + stride] - self.frame[j] == stride * self.stride[j]))
    starts = np.arange(max(n - (clip_len - 1) * stride, 0))
    valid = np.ones(len(starts), bool)
    for k in range(clip_len - 1):
      valid &= ok[starts + k * stride]
    return starts[valid]


class FrameCache:
  """The records of a data source with every image decoded once, resized to `image_size`, and held
  in host memory (uint8 [n, S, S, 3]: 7200 frames at 256 px are 1.4 GB); clips gather frames from it
  by index instead of reading and decoding records. Filled when made; a copy pickled into a grain
  worker process carries the source, not the frames, and fills its own on first use."""

  def __init__(self, data_source: Sequence[dict[str, Any]], image_size: int, chunk: int = 256):
    self.data_source, self.image_size, self.chunk = data_source, image_size, chunk
    self._frames: np.ndarray | None = None
    self._records: list[dict[str, Any]] = []
    self._fill()

  def _fill(self) -> None:
    n, size = len(self.data_source), self.image_size
    frames = np.empty((n, size, size, 3), np.uint8)
    records = []
    getitems = getattr(self.data_source, "__getitems__", None)
    for lo in range(0, n, self.chunk):
      keys = list(range(lo, min(lo + self.chunk, n)))
      for i, r in zip(keys, getitems(keys) if getitems else [self.data_source[i] for i in keys]):
        frames[i] = _resize(r["image"], size)
        records.append({k: v for k, v in r.items() if k != "image"})
    self._frames, self._records = frames, records

  @property
  def frames(self) -> np.ndarray:
    if self._frames is None:  # a copy in a worker process: filled on first use
      self._fill()
    return self._frames

  @property
  def nbytes(self) -> int:
    return self.frames.nbytes

  def __len__(self) -> int:
    return len(self.data_source)

  def __getitem__(self, i: int) -> dict[str, Any]:
    frames = self.frames
    return dict(self._records[i], image=frames[i])

  def __getitems__(self, keys: Sequence[int]) -> list[dict[str, Any]]:
    return [self[i] for i in keys]

  def __getstate__(self) -> dict[str, Any]:
    return dict(self.__dict__, _frames=None, _records=[])

  def __repr__(self) -> str:
    return f"FrameCache({self.data_source!r}, {self.image_size})"


def assign_slots(track_ids: Sequence[np.ndarray], max_objects: int) -> tuple[list[np.ndarray], int]:
  """Slot of every object of every frame (-1: dropped) and the number of objects dropped.

  Slots follow the order of first appearance in the clip, so a track keeps its slot.
  """
  order: dict[int, int] = {}
  for ids in track_ids:
    for t in np.asarray(ids).tolist():
      order.setdefault(t, len(order))
  slots = [np.array([order[t] if order[t] < max_objects else -1 for t in np.asarray(ids).tolist()],
                    np.int64) for ids in track_ids]
  return slots, max(len(order) - max_objects, 0)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  image = np.asarray(image, np.uint8)
  if image.shape[:2] == (size, size):
    return image
  interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
  return cv2.resize(image, (size, size), interpolation=interp)


def records_to_clip(records: Sequence[dict[str, Any]], max_objects: int, image_size: int
                    ) -> dict[str, np.ndarray]:
  """Stacks per-frame records into one clip with aligned object slots."""
  t, m = len(records), max_objects
  objects = [r["objects"] for r in records]
  slots, _ = assign_slots([np.asarray(o["track_id"], np.int64) for o in objects], m)
  clip = {
      "image": np.stack([_resize(r["image"], image_size) for r in records]),
      "boxes": np.zeros((t, m, 4), np.float32),
      "labels": np.zeros((t, m), np.int32),
      "mask": np.zeros((t, m), bool),
      "touches_edge": np.zeros((t, m), bool),
      "gap": np.float32((records[-1]["frame"] - records[0]["frame"]) / (t - 1) if t > 1 else 1.0),
  }
  for i, (obj, slot) in enumerate(zip(objects, slots)):
    keep = slot >= 0
    s = slot[keep]
    clip["boxes"][i, s] = np.asarray(obj["bbox"], np.float32).reshape(-1, 4)[keep]
    clip["labels"][i, s] = np.asarray(obj["label"], np.int32)[keep]
    clip["touches_edge"][i, s] = np.asarray(obj["touches_edge"], bool)[keep]
    clip["mask"][i, s] = True
  return clip


def pad_boxes(clip: dict[str, np.ndarray], pad: Sequence[float]) -> dict[str, np.ndarray]:
  """Grows every visible box by `pad[label]` (normalised) on each side, clipped to the frame: the
  real annotators' boxes carry a margin of ~4-5 px at 640 px that the tight synthetic boxes lack."""
  clip = dict(clip)
  b = clip["boxes"]
  p = np.asarray(pad, np.float32)[clip["labels"]]
  lo = np.clip(b[..., :2] - b[..., 2:] / 2 - p[..., None], 0.0, 1.0)
  hi = np.clip(b[..., :2] + b[..., 2:] / 2 + p[..., None], 0.0, 1.0)
  clip["boxes"] = np.where(clip["mask"][..., None], np.concatenate([(lo + hi) / 2, hi - lo], -1), 0.0
                           ).astype(np.float32)
  return clip


# Burned-in overlays of another detector, as in frames copied from its annotated output video: 1-px
# boxes with a filled label tag above, drawn at 640 px, in one of two styles:
# - "palette" (the shipped recipe's): orange or pink (RGB), each box on the truth with 3 px of jitter;
# - "random": colours drawn in HSV (OpenCV ranges), dark ones included (the dense clip's tags are orange,
#   RGB ~(215, 150, 50), and a dark maroon, ~(99, 47, 78)), and boxes that miss the object. Another
#   detector's boxes do: on the dense clip each side of a drawn box is off the truth by a std of
#   0.04-0.07 of the box's size for bolts, 0.09-0.19 for nuts. So each side is off by a share of the
#   box's size drawn once per object and clip (OVERLAY_BOX_ERROR, the std) plus the 3 px a frame: a
#   drawn box that fits the truth teaches the model to box the drawing, not the object.
OVERLAY_STYLES = ("palette", "random")
OVERLAY_PALETTE = ((225, 148, 30), (205, 60, 150))
OVERLAY_TAG_PX = 12
OVERLAY_BOX_ERROR = 0.08
OVERLAY_SATURATION = (100, 256)
OVERLAY_VALUE = (70, 256)


def draw_overlays(clip: dict[str, np.ndarray], rng: np.random.Generator,
                  style: str = "palette") -> dict[str, np.ndarray]:
  """Draws overlay boxes and label tags around most objects of a clip (image only, labels unchanged).

  A colour is drawn per object independently of its class, so the overlay carries no class cue; boxes
  are jittered (and in the "random" style miss the object) and a few objects get none, so the model
  learns to ignore the overlay. `style`: one of OVERLAY_STYLES."""
  clip = dict(clip)
  image = clip["image"].copy()
  t, h, w = image.shape[:3]
  scale = w / 640.0
  m = clip["mask"].shape[1]
  drawn = rng.random(m) < 0.85
  if style == "palette":
    colours = [OVERLAY_PALETTE[k] for k in rng.integers(0, len(OVERLAY_PALETTE), m)]
    error = np.zeros((m, 4))
  else:
    colours = overlay_colours(rng, m)
    error = rng.normal(0.0, OVERLAY_BOX_ERROR, (m, 4))
  jitter = rng.normal(0.0, 3.0, (t, m, 4)) * scale
  tag_w = rng.uniform(50, 75, m) * scale
  for i in range(t):
    frame = image[i]
    for j in np.flatnonzero(clip["mask"][i] & drawn):
      cx, cy, bw, bh = clip["boxes"][i, j] * np.array([w, h, w, h])
      x0, y0, x1, y1 = (np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
                        + error[j] * np.array([bw, bh, bw, bh]) + jitter[i, j])
      colour = colours[j]
      line = frame.copy()  # a 1-px line at 640 px is fainter once the frame is resized down
      cv2.rectangle(line, (int(x0), int(y0)), (int(x1), int(y1)), colour, 1, cv2.LINE_AA)
      alpha = min(1.5 * scale, 1.0)
      frame[:] = cv2.addWeighted(line, alpha, frame, 1 - alpha, 0)
      tag_h = OVERLAY_TAG_PX * scale
      top = max(y0 - tag_h, 0.0)
      cv2.rectangle(frame, (int(x0), int(top)), (int(x0 + tag_w[j]), int(top + tag_h)), colour, -1)
      text = f"{('bolt', 'nut')[rng.integers(2)]} {rng.uniform(0.3, 0.95):.2f}"
      cv2.putText(frame, text, (int(x0), int(top + 0.8 * tag_h)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale,
                  (255, 255, 255), 1, cv2.LINE_AA)
  clip["image"] = image
  return clip


def overlay_colours(rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
  """`n` RGB colours: hue uniform, saturation and value uniform in OVERLAY_SATURATION / OVERLAY_VALUE."""
  hsv = np.stack([rng.integers(0, 180, n), rng.integers(*OVERLAY_SATURATION, n),
                  rng.integers(*OVERLAY_VALUE, n)], -1).astype(np.uint8)
  rgb = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]
  return [tuple(int(v) for v in c) for c in rgb]


def flip_and_jpeg(clip: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
  """The host part of the augmentation, one draw for the whole clip, each with probability 1/2:
  horizontal flip (boxes too); JPEG re-compression at quality 30-95. The photometric part (exposure,
  gamma, contrast, colour, blur, noise) runs in the jitted train step (`mottr.augment.photometric`),
  after this one. Only the flip changes boxes."""
  clip = dict(clip)
  image = clip["image"]
  if rng.random() < 0.5:
    image = image[:, :, ::-1]
    clip["boxes"] = clip["boxes"].copy()
    clip["boxes"][..., 0] = np.where(clip["mask"], 1.0 - clip["boxes"][..., 0], 0.0)
  if rng.random() < 0.5:
    quality = int(rng.integers(30, 96))
    image = np.stack([_jpeg(frame, quality) for frame in image])
  clip["image"] = image  # a flipped clip stays a view: batching copies it once
  return clip


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
  _, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
  return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# An object cut by a composite's seam keeps a box while this much of its width shows (the real
# annotators box an object once about 22 px of it is visible, at 640 px).
MIN_VISIBLE = 22.0 / 640.0
SEAM_RANGE = (0.3, 0.7)  # normalised x of a composite's seam


def compose_columns(left: dict[str, np.ndarray], right: dict[str, np.ndarray], seam: float
                    ) -> dict[str, np.ndarray]:
  """One clip of two: `left`'s frames for x < `seam` (normalised), `right`'s beyond it. Objects fall
  straight down, so each half keeps a true fall through the whole frame height; the two clips
  must share their frame gap. An object cut by the seam keeps the box of its visible part while
  at least MIN_VISIBLE of its width shows, and no box elsewhere. `right`'s objects take the slots
  after `left`'s; those beyond the last slot are dropped."""
  width = left["image"].shape[2]
  cut = int(round(seam * width))
  clip = {"image": np.concatenate([left["image"][:, :, :cut], right["image"][:, :, cut:]], axis=2),
          "gap": left["gap"]}
  halves = []
  for half, lo, hi in ((left, 0.0, cut / width), (right, cut / width, 1.0)):
    b = half["boxes"]
    x0 = np.clip(b[..., 0] - b[..., 2] / 2, lo, hi)
    x1 = np.clip(b[..., 0] + b[..., 2] / 2, lo, hi)
    mask = half["mask"] & (x1 - x0 >= MIN_VISIBLE)
    boxes = np.stack([(x0 + x1) / 2, b[..., 1], x1 - x0, b[..., 3]], -1)
    halves.append({"boxes": np.where(mask[..., None], boxes, 0.0).astype(np.float32), "mask": mask,
                   "labels": np.where(mask, half["labels"], 0), "touches_edge": half["touches_edge"] & mask})
  # Slots follow first appearance, so left's objects hold slots 0 .. used-1 and the rest are free.
  m, used = left["mask"].shape[1], int(left["mask"].any(0).sum())
  for key, value in halves[0].items():
    clip[key] = value.copy()
    clip[key][:, used:] = halves[1][key][:, :m - used]
  return clip


@dataclasses.dataclass(frozen=True)
class _LoadClip:
  """Clip number k -> clip arrays (a picklable grain map function)."""
  data_source: Sequence[dict[str, Any]]
  starts: np.ndarray  # int64 [num_clips, 2]: first record, stride in records
  clip_len: int
  max_objects: int
  image_size: int
  box_pad: tuple[float, float] = (0.0, 0.0)

  def load(self, k: int) -> dict[str, np.ndarray]:
    start, stride = self.starts[k].tolist()
    keys = [start + j * stride for j in range(self.clip_len)]
    getitems = getattr(self.data_source, "__getitems__", None)
    records = getitems(keys) if getitems else [self.data_source[j] for j in keys]
    clip = records_to_clip(records, self.max_objects, self.image_size)
    return pad_boxes(clip, self.box_pad) if any(self.box_pad) else clip

  def __call__(self, k: int | tuple[int, int, float]) -> dict[str, np.ndarray]:
    """k, or (k, partner, seam): clip k composed with clip `partner` at `seam` (`compose_columns`)."""
    if isinstance(k, tuple):
      k, partner, seam = k
      return compose_columns(self.load(k), self.load(partner), seam)
    return self.load(k)


@dataclasses.dataclass(frozen=True)
class _Partner:
  """k -> (k, partner, seam) for a share `prob` of the clips, else k: the partner is a random clip of
  the same stride (so the same frame gap), the seam uniform in SEAM_RANGE (a picklable grain random map)."""
  prob: float
  strides: np.ndarray  # int64 [num_clips]: each clip's stride in records

  def __call__(self, k: int, rng: np.random.Generator) -> int | tuple[int, int, float]:
    if rng.random() >= self.prob:
      return k
    same = np.flatnonzero(self.strides == self.strides[k])
    return int(k), int(same[rng.integers(len(same))]), float(rng.uniform(*SEAM_RANGE))


def make_clips(data_source: Sequence[dict[str, Any]], *, clip_len: int, strides: Sequence[int],
               max_objects: int, seed: int, augment: bool, image_size: int,
               box_pad: Sequence[float] = (0.0, 0.0), overlay_prob: float = 0.0,
               overlay_style: str = "palette", composite_prob: float = 0.0) -> grain.MapDataset:
  """Infinite MapDataset of single clips (arrays as in a batch, without B), shuffled anew
  every epoch over all (start, stride) pairs. `box_pad`: per-class margin added to every box
  (normalised, `pad_boxes`); `overlay_prob`: share of clips given `draw_overlays` in `overlay_style`
  (before the augmentation); `composite_prob`: share of clips composed side by side with another clip
  of the same stride (`compose_columns`, before the overlays); `augment`: the host part of it,
  `flip_and_jpeg` (the photometric part is `mottr.augment.photometric`, in the train step). Wrap a
  TFDS source in `FrameCache` first to decode each frame once."""
  if overlay_style not in OVERLAY_STYLES:
    raise UserError(f"overlay style {overlay_style!r}: use one of {', '.join(OVERLAY_STYLES)}")
  index = RecordIndex.of(data_source)
  starts = [(i, s) for s in strides for i in index.clip_starts(clip_len, s).tolist()]
  if not starts:
    raise UserError(f"{data_source}: no clip of {clip_len} records at strides {list(strides)}")
  load = _LoadClip(data_source, np.array(starts, np.int64), clip_len, max_objects, image_size,
                   tuple(float(p) for p in box_pad))
  ds = grain.MapDataset.range(len(starts)).shuffle(seed=seed).repeat()
  if composite_prob > 0:
    ds = ds.random_map(_Partner(composite_prob, load.starts[:, 1]), seed=seed + 104729)
  ds = ds.map(load)
  if overlay_prob > 0:
    ds = ds.random_map(_Overlays(overlay_prob, overlay_style), seed=seed + 7919)
  return ds.random_map(flip_and_jpeg, seed=seed) if augment else ds


@dataclasses.dataclass(frozen=True)
class _Overlays:
  """`draw_overlays` in `style` on a share `prob` of the clips (a picklable grain random map)."""
  prob: float
  style: str

  def __call__(self, clip: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return draw_overlays(clip, rng, self.style) if rng.random() < self.prob else clip


def batch_clips(clips: grain.MapDataset, batch_size: int) -> grain.MapDataset:
  return clips.batch(batch_size, drop_remainder=True)


def mix_clip_datasets(clip_datasets: Sequence[grain.MapDataset], weights: Sequence[float],
                      batch_size: int) -> grain.MapDataset:
  """Infinite batches of clips drawn from one or several `make_clips` datasets in proportion to
  `weights` (e.g. synthetic video and real sparse frames). The datasets must share clip_len,
  max_objects and image_size."""
  datasets = list(clip_datasets)
  mixed = datasets[0] if len(datasets) == 1 else grain.MapDataset.mix(datasets, list(weights))
  return batch_clips(mixed, batch_size)
