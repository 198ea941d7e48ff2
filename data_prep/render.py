"""Small polygon meshes of bolts, lag screws and nuts, and a painter's-algorithm rasteriser.

Units are pixels at the objects' nominal depth. Camera coordinates: x right, y down,
z away from the camera, which sits at (0, 0, -CAMERA_DISTANCE) relative to an object's
centre. A mesh is a list of convex planar polygons (padded to a fixed corner count by
repeating their last corner) with outward normals and a base colour per face, so that
shading and projection are vectorised and only the polygon fills loop in Python.
"""
import dataclasses

import cv2
import numpy as np

CAMERA_DISTANCE = 6000.0  # px; weak perspective keeps box widths steady while tumbling
SUPERSAMPLE = 2
_SHIFT = 3  # fractional bits for cv2.fillConvexPoly
_KEY_LIGHT = np.array([-0.45, -0.75, -0.5]) / np.linalg.norm([-0.45, -0.75, -0.5])
_FILL_LIGHT = np.array([0.7, 0.1, -0.7]) / np.linalg.norm([0.7, 0.1, -0.7])
_HALF_VECTOR = (_KEY_LIGHT + np.array([0.0, 0.0, -1.0]))
_HALF_VECTOR /= np.linalg.norm(_HALF_VECTOR)


@dataclasses.dataclass(frozen=True)
class Material:
  """Phong-style material; colours are BGR in [0, 255]."""
  color: tuple[float, float, float]
  ambient: float = 0.35
  diffuse: float = 0.75
  specular: float = 0.5
  shininess: float = 20.0
  metallic: float = 0.5  # specular tint: 0 white highlight, 1 base-coloured


MATERIALS = {
    "steel": Material((128, 128, 132), specular=0.55, shininess=18),
    "dark_steel": Material((72, 72, 78), specular=0.45, shininess=22),
    "zinc": Material((170, 166, 160), specular=0.6, shininess=25),
    "copper": Material((70, 118, 190), specular=0.55, shininess=16, metallic=0.7),
    "rust": Material((52, 82, 132), specular=0.15, shininess=8),
    "nut_bright": Material((235, 222, 214), ambient=0.55, diffuse=0.6, specular=0.9,
                           shininess=30, metallic=0.2),
}


@dataclasses.dataclass(frozen=True)
class Mesh:
  """Convex polygons: corners (F, K) indices into vertices, padded by repetition."""
  vertices: np.ndarray  # (V, 3) float64, centred on the bounding-box centre
  faces: np.ndarray  # (F, K) int
  normals: np.ndarray  # (F, 3) outward unit normals
  centroids: np.ndarray  # (F, 3)
  colors: np.ndarray  # (F, 3) base BGR colour per face (material colour x band shade)
  part_materials: tuple[Material, ...]
  parts: np.ndarray  # (F,) index into part_materials


class _Builder:
  """Collects polygons in bulk; each gets an outward hint used to orient its normal."""

  def __init__(self):
    self.points: list[np.ndarray] = []
    self.count = 0
    self.groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

  def add_vertices(self, points) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 3)
    self.points.append(points)
    self.count += len(points)
    return np.arange(self.count - len(points), self.count)

  def vertex(self, idx) -> np.ndarray:
    return np.concatenate(self.points)[idx]

  def add_polygons(self, idx, outward, part: int, shade=1.0) -> None:
    """(F, k) corner indices, (F, 3) outward hints, a part id, (F,) or scalar shades."""
    idx = np.atleast_2d(np.asarray(idx, np.int64))
    outward = np.broadcast_to(np.asarray(outward, np.float64), (len(idx), 3))
    self.groups.append((idx, outward, np.full(len(idx), part),
                        np.broadcast_to(np.asarray(shade, np.float64), (len(idx),))))

  def build(self, part_materials: tuple[Material, ...]) -> Mesh:
    vertices = np.concatenate(self.points)
    vertices -= (vertices.min(0) + vertices.max(0)) / 2
    k = max(g[0].shape[1] for g in self.groups)
    faces = np.concatenate([np.concatenate([g[0], np.repeat(g[0][:, -1:], k - g[0].shape[1], 1)],
                                           1) for g in self.groups])
    corners = np.concatenate([np.full(len(g[0]), g[0].shape[1]) for g in self.groups])
    pts = vertices[faces]  # (F, K, 3); repeated corners add nothing to Newell's sums
    nxt = np.roll(pts, -1, axis=1)
    normals = np.stack([
        np.sum((pts[..., 1] - nxt[..., 1]) * (pts[..., 2] + nxt[..., 2]), 1),
        np.sum((pts[..., 2] - nxt[..., 2]) * (pts[..., 0] + nxt[..., 0]), 1),
        np.sum((pts[..., 0] - nxt[..., 0]) * (pts[..., 1] + nxt[..., 1]), 1)], 1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    outward = np.concatenate([g[1] for g in self.groups])
    normals *= np.where(np.einsum("fi,fi->f", normals, outward) < 0, -1.0, 1.0)[:, None]
    centroids = (pts.sum(1) - (k - corners)[:, None] * pts[:, -1]) / corners[:, None]
    parts = np.concatenate([g[2] for g in self.groups])
    shades = np.concatenate([g[3] for g in self.groups])
    base = np.array([m.color for m in part_materials], np.float64)
    return Mesh(vertices=vertices, faces=faces, normals=normals, centroids=centroids,
                colors=base[parts] * shades[:, None], part_materials=part_materials, parts=parts)


def _ring(radius: float, z: float, n: int, phase: float = 0.0) -> np.ndarray:
  angles = phase + 2 * np.pi * np.arange(n) / n
  return np.stack([radius * np.cos(angles), radius * np.sin(angles), np.full(n, z)], 1)


def _hex_ring(across_flats: float, z: float, n: int) -> np.ndarray:
  """n points (a multiple of 6) on a hexagon's outline at the angles of an n-gon."""
  angles = 2 * np.pi * np.arange(n) / n
  sector = np.mod(angles, np.pi / 3) - np.pi / 6
  r = across_flats / 2 / np.cos(sector)
  return np.stack([r * np.cos(angles), r * np.sin(angles), np.full(n, z)], 1)


def _tube(b: _Builder, lower, upper, part: int, shade: float = 1.0,
          inward: bool = False) -> None:
  """Side quads between two index rings of equal size; `inward` for a hole's wall."""
  lower, upper = np.asarray(lower), np.asarray(upper)
  nxt_lower, nxt_upper = np.roll(lower, -1), np.roll(upper, -1)
  mid = (b.vertex(lower) + b.vertex(nxt_lower)) / 2
  mid[:, 2] = 0.0
  b.add_polygons(np.stack([lower, nxt_lower, nxt_upper, upper], 1), -mid if inward else mid,
                 part, shade)


def _cap(b: _Builder, ring, z_sign: float, part: int, shade: float = 1.0) -> None:
  b.add_polygons(ring, [0.0, 0.0, z_sign], part, shade)


def _shank(b: _Builder, radius: float, z0: float, z1: float, segments: int, part: int,
           thread_from: float, pitch: float) -> np.ndarray:
  """Cylinder from z0 to z1 (z0 < z1), threaded above `thread_from` as shaded bands, with a
  cap at z0. Returns the index ring at z1.
  """
  zs = [z0]
  if thread_from > z0 + 1e-6:
    zs.append(min(thread_from, z1))
  if z1 - zs[-1] > 1e-6:
    bands = max(1, int(round((z1 - zs[-1]) / pitch)))
    zs.extend(np.linspace(zs[-1], z1, bands + 1)[1:])
  zs = np.array(zs)
  rings = b.add_vertices(np.concatenate([_ring(radius, z, segments) for z in zs]))
  rings = rings.reshape(len(zs), segments)
  lower, upper = rings[:-1], rings[1:]
  band = np.arange(len(zs) - 1)
  threaded = zs[:-1] >= thread_from - 1e-6
  shade = np.where(threaded, np.where(band % 2 == 1, 0.8, 1.06), 1.0)
  angles = 2 * np.pi * (np.arange(segments) + 0.5) / segments
  radial = np.stack([np.cos(angles), np.sin(angles), np.zeros(segments)], 1)
  quads = np.stack([lower, np.roll(lower, -1, 1), np.roll(upper, -1, 1), upper], -1)
  b.add_polygons(quads.reshape(-1, 4), np.tile(radial, (len(band), 1)), part,
                 np.repeat(shade, segments))
  _cap(b, rings[0], -1.0, part)
  return rings[-1]


def hex_bolt(length: float, diameter: float, head: str, thread_fraction: float,
             head_material: Material, shank_material: Material, tip: bool = False,
             threads: bool = True) -> Mesh:
  """A bolt along +z: head ("hex" or "round") at z<0, shank of `length`, optional cone tip.

  `tip` makes a lag screw: the last part of the shank tapers to a point. Without `threads`
  the shank is one plain cylinder: same outline, far fewer faces (for planning).
  """
  b = _Builder()
  segments = 10
  head_h = 0.65 * diameter if head == "hex" else 0.5 * diameter
  if head == "hex":
    bottom = b.add_vertices(_hex_ring(1.5 * diameter, -head_h, 6))
    top = b.add_vertices(_hex_ring(1.5 * diameter, 0.0, 6))
  else:
    bottom = b.add_vertices(_ring(1.1 * diameter, -head_h, segments))
    top = b.add_vertices(_ring(1.1 * diameter, 0.0, segments))
  _tube(b, bottom, top, 0)
  _cap(b, bottom, -1.0, 0, 1.05)
  _cap(b, top, 1.0, 0, 0.95)
  body_end = length - (1.6 * diameter if tip else 0.0)
  pitch = max(2.5, 0.3 * diameter) if threads else np.inf
  end = _shank(b, diameter / 2, 0.0, body_end, segments, 1,
               thread_from=length * (1 - thread_fraction), pitch=pitch)
  if tip:
    apex = b.add_vertices([[0.0, 0.0, length]])[0]
    mid = (b.vertex(end) + b.vertex(np.roll(end, -1))) / 2
    mid[:, 2] = 0.3 * diameter
    b.add_polygons(np.stack([end, np.roll(end, -1), np.full(segments, apex)], 1), mid, 1, 0.9)
  else:
    _cap(b, end, 1.0, 1)
  return b.build((head_material, shank_material))


def hex_nut(across_flats: float, thickness: float, hole: float, material: Material) -> Mesh:
  """A hex nut along z: outer hexagonal prism with a cylindrical hole of diameter `hole`."""
  b = _Builder()
  n = 12
  z0, z1 = -thickness / 2, thickness / 2
  outer0 = b.add_vertices(_hex_ring(across_flats, z0, n))
  outer1 = b.add_vertices(_hex_ring(across_flats, z1, n))
  inner0 = b.add_vertices(_ring(hole / 2, z0, n))
  inner1 = b.add_vertices(_ring(hole / 2, z1, n))
  # Outer flats join every other outline point (the hexagon's corners).
  c0, c1 = outer0[::2], outer1[::2]
  mid = (b.vertex(c0) + b.vertex(np.roll(c0, -1))) / 2
  mid[:, 2] = 0.0
  b.add_polygons(np.stack([c0, np.roll(c0, -1), np.roll(c1, -1), c1], 1), mid, 0)
  _tube(b, inner0, inner1, 0, 0.55, inward=True)
  for outer, inner, sign in ((outer0, inner0, -1.0), (outer1, inner1, 1.0)):
    b.add_polygons(np.stack([outer, np.roll(outer, -1), np.roll(inner, -1), inner], 1),
                   [0.0, 0.0, sign], 0)
  return b.build((material,))


def rotation_from_axis(axis: np.ndarray, roll: float) -> np.ndarray:
  """Rotation mapping local +z to unit `axis`, after rolling `roll` radians about z."""
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
  u = np.cross(helper, axis)
  u /= np.linalg.norm(u)
  v = np.cross(axis, u)
  base = np.stack([u, v, axis], 1)
  c, s = np.cos(roll), np.sin(roll)
  return base @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotations_x(angles) -> np.ndarray:
  """(..., 3, 3) rotations by `angles` (radians) about the x axis."""
  angles = np.asarray(angles, np.float64)
  c, s = np.cos(angles), np.sin(angles)
  out = np.zeros(angles.shape + (3, 3))
  out[..., 0, 0] = 1.0
  out[..., 1, 1], out[..., 1, 2], out[..., 2, 1], out[..., 2, 2] = c, -s, s, c
  return out


def extents(vertices: np.ndarray, rotations: np.ndarray) -> np.ndarray:
  """(T, 4) projected [xmin, ymin, xmax, ymax] offsets of vertices under (T, 3, 3) rotations."""
  p = np.matmul(rotations, vertices.T)  # (T, 3, V)
  k = CAMERA_DISTANCE / (CAMERA_DISTANCE + p[:, 2])
  x, y = p[:, 0] * k, p[:, 1] * k
  return np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], 1)


@dataclasses.dataclass(frozen=True)
class Sprite:
  """A rendered object at an integer origin: premultiplied BGR and alpha (float32, 0..255)
  with motion blur, and the coverage (alpha before motion blur) that defines its mask."""
  x0: int
  y0: int
  color: np.ndarray  # (h, w, 3) premultiplied
  alpha: np.ndarray  # (h, w)
  coverage: np.ndarray  # (h, w)


def _shade(mesh: Mesh, faces: np.ndarray, normals: np.ndarray) -> np.ndarray:
  """BGR colours of the given faces for their camera-space normals."""
  key = np.clip(normals @ _KEY_LIGHT, 0.0, None)
  fill = np.clip(normals @ _FILL_LIGHT, 0.0, None)
  half = np.clip(normals @ _HALF_VECTOR, 0.0, None)
  parts = mesh.parts[faces]
  colors = mesh.colors[faces]
  out = np.empty_like(colors)
  for index, m in enumerate(mesh.part_materials):
    sel = parts == index
    base = colors[sel]
    light = m.ambient + m.diffuse * key[sel] + 0.3 * m.diffuse * fill[sel]
    tint = (1 - m.metallic) * 255.0 + m.metallic * base
    out[sel] = base * light[:, None] + m.specular * tint * (half[sel] ** m.shininess)[:, None]
  return np.clip(out, 0, 255)


def render(mesh: Mesh, rotation: np.ndarray, centre: tuple[float, float], blur: float = 0.0,
           gain: float = 1.0) -> Sprite:
  """Rasterises a mesh at screen `centre`, with vertical motion blur of `blur` px and its
  colours scaled by `gain`."""
  verts = mesh.vertices @ rotation.T
  normals = mesh.normals @ rotation.T
  cents = mesh.centroids @ rotation.T
  view = cents + np.array([0.0, 0.0, CAMERA_DISTANCE])
  visible = np.einsum("fi,fi->f", normals, view) < 0
  xy = verts[:, :2] * (CAMERA_DISTANCE / (CAMERA_DISTANCE + verts[:, 2:3]))
  xy += np.asarray(centre, np.float64)
  pad = 2 + int(np.ceil(blur))
  x0 = int(np.floor(xy[:, 0].min())) - pad
  y0 = int(np.floor(xy[:, 1].min())) - pad
  w = int(np.ceil(xy[:, 0].max())) + pad - x0
  h = int(np.ceil(xy[:, 1].max())) + pad - y0
  ss = SUPERSAMPLE
  canvas = np.zeros((h * ss, w * ss, 4), np.uint8)
  pts = np.round((xy - [x0, y0]) * (ss * (1 << _SHIFT))).astype(np.int32)
  faces = np.flatnonzero(visible)
  faces = faces[np.argsort(-cents[faces, 2], kind="stable")]  # far first
  colors = np.clip(_shade(mesh, faces, normals[faces]) * gain, 0, 255)
  colors = np.concatenate([colors, np.full((len(faces), 1), 255.0)], 1).tolist()
  polys = pts[mesh.faces[faces]]
  for poly, color in zip(polys, colors):
    cv2.fillConvexPoly(canvas, poly, color, cv2.LINE_8, _SHIFT)
  small = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
  coverage = small[:, :, 3].copy()
  if blur >= 1.0:
    k = int(round(blur)) | 1
    small = cv2.blur(small, (1, k))
  return Sprite(x0=x0, y0=y0, color=small[:, :, :3], alpha=small[:, :, 3], coverage=coverage)
