"""Tests for data_prep.render: meshes, projection and the rasteriser agree."""
import numpy as np
import pytest

from data_prep import render

STEEL = render.MATERIALS["steel"]


def _bolt(**kw) -> render.Mesh:
  args = dict(length=120.0, diameter=14.0, head="hex", thread_fraction=0.5,
              head_material=STEEL, shank_material=render.MATERIALS["copper"])
  args.update(kw)
  return render.hex_bolt(**args)


@pytest.mark.parametrize("mesh", [
    _bolt(), _bolt(head="round", tip=True), _bolt(threads=False),
    render.hex_nut(40.0, 22.0, 24.0, render.MATERIALS["nut_bright"])])
def test_closed_mesh_normals_point_outward(mesh):
  # Over closed surfaces the area-weighted normals cancel, and by the divergence theorem
  # sum(area * centroid . normal) = 3 * volume > 0 exactly when they point outward.
  pts = mesh.vertices[mesh.faces]
  areas = 0.5 * np.linalg.norm(np.cross(pts, np.roll(pts, -1, axis=1)).sum(1), axis=1)
  weighted = areas[:, None] * mesh.normals
  assert np.abs(weighted.sum(0)).max() < 1e-6 * areas.sum()
  volume = np.sum(weighted * mesh.centroids) / 3
  assert volume > 0
  lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
  assert volume < np.prod(hi - lo)


def test_mesh_is_centred_and_outline_matches():
  mesh, coarse = _bolt(), _bolt(threads=False)
  assert np.allclose(mesh.vertices.min(0), -mesh.vertices.max(0))
  assert len(coarse.faces) < len(mesh.faces)
  rotations = np.stack([render.rotations_x(a) @ render.rotation_from_axis([1, 1, 0.2], 0.3)
                        for a in np.linspace(0, 3, 7)])
  np.testing.assert_allclose(render.extents(coarse.vertices, rotations),
                             render.extents(mesh.vertices, rotations), atol=1e-9)


def test_rotation_from_axis_maps_z_onto_axis():
  axis = np.array([0.3, -0.5, 0.8])
  rot = render.rotation_from_axis(axis, 1.2)
  np.testing.assert_allclose(rot @ [0, 0, 1], axis / np.linalg.norm(axis), atol=1e-12)
  np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)


def test_sprite_covers_the_projected_extents():
  mesh = _bolt()
  rot = render.rotations_x(0.4) @ render.rotation_from_axis([0.6, 0.7, 0.3], 0.5)
  centre = (300.3, 200.7)
  sprite = render.render(mesh, rot, centre, blur=5.0)
  cover = sprite.coverage >= 127.5
  rows, cols = np.flatnonzero(cover.any(1)), np.flatnonzero(cover.any(0))
  box = [sprite.x0 + cols[0], sprite.y0 + rows[0], sprite.x0 + cols[-1] + 1,
         sprite.y0 + rows[-1] + 1]
  expected = render.extents(mesh.vertices, rot[None])[0] + np.tile(centre, 2)
  np.testing.assert_allclose(box, expected, atol=1.0)
  # Motion blur smears alpha vertically, beyond the sharp coverage, but not sideways.
  assert (sprite.alpha > 10).any(1).sum() > cover.any(1).sum()
  assert np.all(sprite.color <= sprite.alpha[:, :, None] + 1e-3)


def test_nut_facing_the_camera_shows_its_hole():
  nut = render.hex_nut(40.0, 22.0, 24.0, render.MATERIALS["nut_bright"])
  sprite = render.render(nut, np.eye(3), (100.0, 100.0))
  h, w = sprite.coverage.shape
  assert sprite.coverage[h // 2, w // 2] == 0
  assert sprite.coverage[h // 2, w // 2 + 16] == 255
