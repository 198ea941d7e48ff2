"""Box conversions and overlaps; work on numpy and jax arrays alike.

Inside the model boxes are normalised `cxcywh`; COCO `xywh` pixels appear only at file boundaries.
"""
import jax.numpy as jnp
import numpy as np


def _xp(x):
  return np if isinstance(x, np.ndarray) else jnp


def cxcywh_to_xyxy(b):
  xp = _xp(b)
  cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
  return xp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def xyxy_to_cxcywh(b):
  xp = _xp(b)
  x0, y0, x1, y1 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
  return xp.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def cxcywh_to_xywh_px(b, width: float, height: float):
  """Normalised cxcywh -> COCO xywh in pixels."""
  xp = _xp(b)
  scale = xp.asarray([width, height, width, height], dtype=b.dtype)
  cx, cy, w, h = [b[..., i] * scale[i] for i in range(4)]
  return xp.stack([cx - w / 2, cy - h / 2, w, h], axis=-1)


def xywh_px_to_cxcywh(b, width: float, height: float):
  """COCO xywh in pixels -> normalised cxcywh."""
  xp = _xp(b)
  x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
  return xp.stack([(x + w / 2) / width, (y + h / 2) / height, w / width, h / height], axis=-1)


def pairwise_iou(a, b, eps: float = 1e-7):
  """IoU and union of xyxy boxes a [..., N, 4] and b [..., M, 4] -> ([..., N, M], [..., N, M])."""
  xp = _xp(a)
  area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
  area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  lt = xp.maximum(a[..., :, None, :2], b[..., None, :, :2])
  rb = xp.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
  wh = xp.clip(rb - lt, 0, None)
  inter = wh[..., 0] * wh[..., 1]
  union = area_a[..., :, None] + area_b[..., None, :] - inter
  return inter / (union + eps), union


def pairwise_giou(a, b, eps: float = 1e-7):
  """Generalised IoU of xyxy boxes a [..., N, 4] and b [..., M, 4] -> [..., N, M]."""
  xp = _xp(a)
  iou, union = pairwise_iou(a, b, eps)
  lt = xp.minimum(a[..., :, None, :2], b[..., None, :, :2])
  rb = xp.maximum(a[..., :, None, 2:], b[..., None, :, 2:])
  wh = xp.clip(rb - lt, 0, None)
  hull = wh[..., 0] * wh[..., 1]
  return iou - (hull - union) / (hull + eps)


def elementwise_giou(a, b, eps: float = 1e-7):
  """Generalised IoU of matching xyxy boxes a [..., 4] and b [..., 4] -> [...]."""
  return pairwise_giou(a[..., None, :], b[..., None, :], eps)[..., 0, 0]


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of COCO xywh boxes a [N, 4] and b [M, 4] -> [N, M] (numpy)."""
  a = np.asarray(a, np.float64).reshape(-1, 4)
  b = np.asarray(b, np.float64).reshape(-1, 4)
  to_xyxy = lambda x: np.concatenate([x[:, :2], x[:, :2] + x[:, 2:]], axis=1)
  return pairwise_iou(to_xyxy(a), to_xyxy(b))[0]


def covered_xywh(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
  """Fraction of each COCO xywh box of inner [M, 4] that lies inside the box outer [4] -> [M] (numpy)."""
  outer = np.asarray(outer, np.float64).reshape(4)
  inner = np.asarray(inner, np.float64).reshape(-1, 4)
  w = np.minimum(outer[0] + outer[2], inner[:, 0] + inner[:, 2]) - np.maximum(outer[0], inner[:, 0])
  h = np.minimum(outer[1] + outer[3], inner[:, 1] + inner[:, 3]) - np.maximum(outer[1], inner[:, 1])
  return np.clip(w, 0, None) * np.clip(h, 0, None) / np.maximum(inner[:, 2] * inner[:, 3], 1e-9)


def clip_xywh(boxes_xywh: np.ndarray, width: float, height: float) -> np.ndarray:
  """Clips xywh boxes [..., 4] to the frame; boxes entirely outside get zero width or height."""
  x0 = np.clip(boxes_xywh[..., 0], 0, width)
  y0 = np.clip(boxes_xywh[..., 1], 0, height)
  x1 = np.clip(boxes_xywh[..., 0] + boxes_xywh[..., 2], 0, width)
  y1 = np.clip(boxes_xywh[..., 1] + boxes_xywh[..., 3], 0, height)
  return np.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)


def clear_of_edges_xywh(boxes_xywh: np.ndarray, width: float, height: float,
                        edge_px: float) -> tuple[np.ndarray, np.ndarray]:
  """(clear in x, clear in y) [...] of xywh pixel boxes [..., 4]: no side within `edge_px` of the
  frame's left/right (top/bottom) edge, where clipping would have cut the object."""
  x, y, w, h = (np.asarray(boxes_xywh, np.float64)[..., i] for i in range(4))
  return (x > edge_px) & (x + w < width - edge_px), (y > edge_px) & (y + h < height - edge_px)


def cap_size_xywh(boxes_xywh: np.ndarray, max_w: float, max_h: float, width: float, height: float,
                  edge_px: float) -> np.ndarray:
  """xywh pixel boxes [..., 4] shrunk about their centre to at most max_w x max_h. A side within
  `edge_px` of the frame's edge was clipped there (the object is partly out of view), so a box
  touching the left or right edge keeps its width, one touching the top or bottom its height."""
  b = np.array(boxes_xywh, np.float64)
  x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
  free_x, free_y = clear_of_edges_xywh(b, width, height, edge_px)
  new_w = np.where(free_x, np.minimum(w, max_w), w)
  new_h = np.where(free_y, np.minimum(h, max_h), h)
  return np.stack([x + (w - new_w) / 2, y + (h - new_h) / 2, new_w, new_h], axis=-1)
