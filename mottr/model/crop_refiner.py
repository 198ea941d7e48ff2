"""A second-stage box refiner: each box is cut out of the full-resolution frame and corrected.

The tracker's boxes come from a 320 px input and stride-8 features; the refiner sees each box at
the source's own resolution: the box grown by `grow` about its centre is warped to a
`size` x `size` crop (so every object fills the crop alike, whatever its size), and a small CNN
predicts where the four edges lie in the crop's coordinates (0 = the crop's left/top, 1 = its
right/bottom). It starts from the edges it was given (a zero-initialised last layer): a new
refiner is the identity. Trained on the truth boxes moved at random (`mottr.train_refiner`),
it learns the annotators' edges (docs/stage29.md). A class-aware refiner (`num_classes` > 0) is told
the class of each box: it finds the object of that class in the crop (a box the detector stretched
over a touching neighbour shrinks back to its own object) and also gives a logit of "an object of
that class is here", which can rescore the detection (docs/stage30.md). The "edges" head (docs/stage33.md)
reads each edge off a distribution over the crop's columns (left, right) or rows (top, bottom) of the
stride-4 features, whose mean is the edge, instead of regressing all four from the pooled features.

Boxes here are xyxy pixels of the frame being cropped (a file boundary of the model: the crop).
"""
from typing import Sequence

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mottr.model.backbone import GroupNorm
from mottr.schema import UserError

HEADS = ("dense", "edges")


class CropRefiner(nn.Module):
  """[N, S, S, 3] uint8 RGB crops, their given edges [N, 4] (crop coordinates) and classes [N] ->
  refined edges [N, 4] and, when class-aware, the logit [N] that an object of the class is there
  (None otherwise)."""
  widths: Sequence[int] = (16, 32, 48, 96)
  hidden: int = 256
  num_classes: int = 0  # 0: class-agnostic (the labels are not read)
  head: str = "dense"   # "dense": the edges regressed from the pooled features; "edges": per-edge distributions

  @nn.compact
  def __call__(self, crops: jax.Array, edges: jax.Array, labels: jax.Array
               ) -> tuple[jax.Array, jax.Array | None]:
    x = crops.astype(jnp.float32) / 255.0 - 0.45
    maps = []
    for width in self.widths:
      x = nn.relu(GroupNorm(num_groups=8)(nn.Conv(width, (3, 3), strides=2)(x)))
      x = nn.relu(GroupNorm(num_groups=8)(nn.Conv(width, (3, 3))(x))) + x
      maps.append(x)
    x = nn.Dense(self.hidden)(x.reshape(x.shape[0], -1))
    if self.num_classes:
      x = x + nn.Embed(self.num_classes, self.hidden)(labels)
    x = nn.relu(x)
    if self.head == "edges":
      out = self.edge_distributions(maps[min(1, len(maps) - 1)], x, edges)
    else:
      out = edges + nn.Dense(4, kernel_init=nn.initializers.zeros)(x)
    return out, (nn.Dense(1)(x)[:, 0] if self.num_classes else None)

  def edge_distributions(self, fmap: jax.Array, pooled: jax.Array, edges: jax.Array) -> jax.Array:
    """Edges [N, 4] as the means of softmaxes over the bins of `fmap` [N, H, W, C]: left/right over its
    columns (features averaged over rows), top/bottom over its rows, each bin's logit read from its
    profile and the pooled features, plus a Gaussian prior about the given edge (a bin wide): a new head
    returns about the given edges."""
    out = []
    for axis, given in ((2, edges[:, 0::2]), (1, edges[:, 1::2])):  # columns: x0, x1; rows: y0, y1
      profile = fmap.mean(axis=3 - axis)  # [N, bins, C]
      bins = profile.shape[1]
      h = nn.Conv(self.hidden // 4, (3,))(profile) + nn.Dense(self.hidden // 4)(pooled)[:, None]
      h = nn.Conv(self.hidden // 4, (3,))(nn.relu(h))
      logits = nn.Dense(2, kernel_init=nn.initializers.zeros)(nn.relu(h))  # [N, bins, 2]
      centres = (jnp.arange(bins) + 0.5) / bins
      prior = -0.5 * ((centres[None, :, None] - given[:, None, :]) * bins) ** 2
      out.append((jax.nn.softmax(logits + prior, axis=1) * centres[None, :, None]).sum(1))
    (x0, x1), (y0, y1) = (o.T for o in out)
    return jnp.stack([x0, y0, x1, y1], -1)


def build_refiner(settings) -> CropRefiner:
  """The refiner of a config's `refiner` section."""
  if settings.head not in HEADS:
    raise UserError(f"refiner.head={settings.head!r}: pass one of {', '.join(HEADS)}")
  return CropRefiner(widths=tuple(settings.widths), hidden=settings.hidden,
                     num_classes=2 if settings.class_aware else 0, head=settings.head)


def init_params(model: CropRefiner, size: int, seed: int = 0):
  """Fresh parameters of `model` for `size` x `size` crops."""
  return model.init(jax.random.key(seed), jnp.zeros((1, size, size, 3), jnp.uint8), jnp.zeros((1, 4)),
                    jnp.zeros((1,), jnp.int32))


def crop_regions(boxes: np.ndarray, grow: float, min_side: float = 4.0) -> np.ndarray:
  """[N, 4] regions (x0, y0, width, height) in pixels: each xyxy box grown by `grow` about its centre."""
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  centre = (boxes[:, :2] + boxes[:, 2:]) / 2
  side = np.maximum(boxes[:, 2:] - boxes[:, :2], min_side) * grow
  return np.concatenate([centre - side / 2, side], 1)


def cut(image: np.ndarray, region: np.ndarray, size: int) -> np.ndarray:
  """The `size` x `size` crop of `image` over `region` (x0, y0, w, h); black outside the frame.
  Boxes are continuous (pixel j spans [j, j + 1]) and OpenCV samples pixel centres, so crop pixel i
  samples x0 + (i + 0.5) w / size - 0.5: a crop of the mirrored frame is the mirrored crop."""
  x0, y0, w, h = (float(v) for v in region)
  sx, sy = size / w, size / h
  warp = np.array([[sx, 0, 0.5 * sx - 0.5 - x0 * sx], [0, sy, 0.5 * sy - 0.5 - y0 * sy]], np.float64)
  shrink = w > size or h > size
  return cv2.warpAffine(image, warp, (size, size), flags=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def to_crop(boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
  """xyxy pixel boxes [N, 4] -> edges in the coordinates of their crop regions [N, 4]."""
  origin, side = np.tile(regions[:, :2], 2), np.tile(regions[:, 2:], 2)
  return ((np.asarray(boxes, np.float32) - origin) / side).astype(np.float32)


def from_crop(edges: np.ndarray, regions: np.ndarray) -> np.ndarray:
  """Edges in crop coordinates [N, 4] -> xyxy pixel boxes."""
  return (np.asarray(edges, np.float32) * np.tile(regions[:, 2:], 2) + np.tile(regions[:, :2], 2)).astype(np.float32)


def mirror(edges: np.ndarray) -> np.ndarray:
  """Crop edges [..., 4] of the crop flipped left-right."""
  edges = np.asarray(edges, np.float32)
  return np.stack([1 - edges[..., 2], edges[..., 1], 1 - edges[..., 0], edges[..., 3]], -1)
