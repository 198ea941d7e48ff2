"""Tests for data_prep.scene_stats on a hand-made COCO dict with known answers."""
import numpy as np
import pytest

from data_prep import scene_stats

ACCEL = 0.4


def _coco(tracks: list[tuple[int, int, list[tuple[int, list[float]]]]], frames: int = 200
          ) -> dict:
  """tracks: (track_id, category_id, [(frame, [x, y, w, h]), ...])."""
  anns = []
  for track_id, category_id, boxes in tracks:
    for frame, box in boxes:
      anns.append({"image_id": frame + 1, "category_id": category_id, "bbox": box,
                   "track_id": track_id})
  anns.sort(key=lambda a: (a["image_id"], a["track_id"]))
  return {"images": [{"id": i + 1, "width": 640, "height": 640} for i in range(frames)],
          "annotations": anns}


def _falling(start: int, length: int, x: float, w: float, h: float, y0: float = 10.0):
  """Fully visible boxes whose top follows y0 + ACCEL / 2 * (t - start)^2."""
  return [(start + k, [x, y0 + 0.5 * ACCEL * k * k, w, h]) for k in range(length)]


@pytest.fixture
def coco() -> dict:
  bolt = _falling(10, 40, 100.0, 60.0, 80.0)
  nut = _falling(20, 30, 130.0, 40.0, 40.0, y0=5.0)  # overlaps the bolt early on
  late = _falling(60, 35, 400.0, 70.0, 90.0)
  edge = [(100, [0.0, 0.0, 50.0, 22.0]), (101, [0.0, 5.0, 50.0, 30.0])]  # touches edges
  return _coco([(1, 1, bolt), (2, 2, nut), (3, 1, late), (4, 1, edge)])


def test_acceleration_recovers_the_quadratic(coco):
  assert scene_stats.acceleration(coco) == pytest.approx(ACCEL, abs=1e-6)


def test_acceleration_of_noisy_whole_pixel_boxes():
  t = np.arange(40)
  boxes = [(int(k), [200.0, float(np.round(20 + 0.5 * 0.41 * k * k)), 50.0, 60.0]) for k in t]
  assert scene_stats.acceleration(_coco([(1, 1, boxes)])) == pytest.approx(0.41, abs=0.01)


def test_frames_in_view_and_arrivals(coco):
  assert scene_stats.frames_in_view(coco) == pytest.approx(np.median([40, 30, 35, 2]))
  assert scene_stats.arrival_gap(coco) == pytest.approx(np.median([10, 40, 40]))
  assert scene_stats.first_start(coco) == pytest.approx(10 / 200)
  assert scene_stats.nut_fraction(coco) == pytest.approx(0.25)


def test_box_sizes_ignore_boxes_touching_an_edge(coco):
  assert scene_stats.box_sizes(coco, 1) == (60.0, 80.0)  # 40 of 60x80, 35 of 70x90, 0 edge
  assert scene_stats.box_sizes(coco, 2) == (40.0, 40.0)
  edge_only = _coco([(1, 1, [(0, [0.0, 10.0, 30.0, 30.0])])])
  assert np.isnan(scene_stats.box_sizes(edge_only, 1)[0])


def test_objects_per_frame(coco):
  mean, most = scene_stats.objects_per_frame(coco)
  assert most == 2
  assert mean == pytest.approx((40 + 30 + 35 + 2) / (101 - 10 + 1))


def test_overlapping_pairs_and_max_nuts(coco):
  bolt = {f: b for f, b in _falling(10, 40, 100.0, 60.0, 80.0)}
  nut = {f: b for f, b in _falling(20, 30, 130.0, 40.0, 40.0, y0=5.0)}
  expected = sum(1 for f in nut if f in bolt
                 and nut[f][1] < bolt[f][1] + bolt[f][3] and bolt[f][1] < nut[f][1] + nut[f][3])
  assert expected > 0
  assert scene_stats.overlapping_pairs(coco) == expected
  stats = scene_stats.annotation_stats(coco)
  assert stats["overlap_pairs"] == pytest.approx(expected * 1800 / 200)
  assert scene_stats.max_at_once(coco, 2) == 1


def test_touching_boxes_do_not_overlap():
  coco = _coco([(1, 1, [(0, [0.0, 0.0, 10.0, 10.0])]), (2, 1, [(0, [10.0, 0.0, 10.0, 10.0])])])
  assert scene_stats.overlapping_pairs(coco) == 0


def test_tumble_variation():
  steady = [(k, [100.0 + (k % 2), 50.0 + 5 * k, 60.0 + (k % 2), 50.0 + k]) for k in range(10)]
  wobbly = [(k, [300.0, 50.0 + 5 * k, 40.0 + 2 * k, 50.0]) for k in range(10)]
  fraction, height = scene_stats.tumble_variation(_coco([(1, 1, steady), (2, 1, wobbly)]))
  assert fraction == pytest.approx(0.5)
  assert height == pytest.approx(np.median([9 / 59, 0.0]))


def test_annotation_stats_has_every_calibrated_statistic(coco):
  names = {s.name for s in scene_stats.STATS}
  stats = scene_stats.annotation_stats(coco) | scene_stats.brightness_stats([1.0, 2.0])
  assert set(stats) == names


def test_brightness_percentiles():
  p5, p95 = scene_stats.brightness_percentiles(np.arange(101, dtype=float))
  assert (p5, p95) == pytest.approx((5.0, 95.0))
