"""Box smoothing of finished tracks (mottr.smoothing): a local straight-line (or free-fall) fit in time."""
import numpy as np

from mottr import smoothing


def _xywh(corners: np.ndarray) -> np.ndarray:
  return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)


def test_a_box_moving_at_constant_velocity_stays_where_it_is_ends_included():
  t = np.arange(20.0)
  boxes = np.stack([100 + 2 * t, 50 + 15 * t, np.full_like(t, 60), 40 + 0.5 * t], axis=1)
  np.testing.assert_allclose(smoothing.smooth_boxes(t, boxes, 3, 640, 640), boxes, atol=1e-9)


def test_inside_an_evenly_spaced_track_it_is_the_moving_average_of_the_corners():
  rng = np.random.default_rng(0)
  top_left = rng.uniform(0, 300, (15, 2))
  corners = np.concatenate([top_left, top_left + rng.uniform(20, 200, (15, 2))], axis=1)
  smoothed = smoothing.smooth_boxes(np.arange(15), _xywh(corners), 3, 640, 640)
  for i in range(3, 12):
    np.testing.assert_allclose(smoothed[i], _xywh(corners[i - 3:i + 4].mean(0, keepdims=True))[0])


def test_noise_around_a_fall_under_gravity_shrinks():
  rng = np.random.default_rng(1)
  t = np.arange(40.0)
  true = np.stack([300 + 0 * t, 10 + 3 * t + 0.205 * t**2, 360 + 0 * t, 90 + 3 * t + 0.205 * t**2], axis=1)
  noisy = true + rng.normal(0, 4, true.shape)
  smoothed = smoothing.smooth_boxes(t, _xywh(noisy), 3, 640, 1000)
  before, after = np.abs(noisy - true).mean(), np.abs(_xywh(true) - smoothed).mean()
  assert after < 0.6 * before, (before, after)


def test_the_gravity_fit_leaves_a_free_fall_where_it_is_and_the_line_fit_does_not():
  t = np.arange(30.0)
  y = 10 + 3 * t + 0.5 * 0.41 * t**2
  boxes = np.stack([200 + 2 * t, y, np.full_like(t, 60), np.full_like(t, 50)], axis=1)
  np.testing.assert_allclose(smoothing.smooth_boxes(t, boxes, 5, 640, 1000, gravity=0.41), boxes, atol=1e-9)
  line = smoothing.smooth_boxes(t, boxes, 5, 640, 1000)
  assert np.abs(line[5:-5, 1] - y[5:-5]).min() > 1.5  # a line through a parabola misses it by a x mean dt² / 2
  np.testing.assert_allclose(line[:, [0, 2, 3]], boxes[:, [0, 2, 3]], atol=1e-9)  # x and the size are linear


def test_sparse_boxes_and_short_tracks_keep_their_boxes():
  boxes = np.array([[10, 20, 30, 40], [15, 60, 30, 42], [20, 110, 28, 40]], np.float64)
  np.testing.assert_array_equal(smoothing.smooth_boxes([0, 10, 20], boxes, 3, 640, 640), boxes)
  np.testing.assert_array_equal(smoothing.smooth_boxes([0, 1], boxes[:2], 3, 640, 640), boxes[:2])


def test_smoothed_boxes_stay_inside_the_frame():
  t = np.arange(7.0)
  boxes = np.stack([np.full_like(t, 5), 560 + 20 * t, np.full_like(t, 50), np.clip(640 - (560 + 20 * t), 0, 80)], 1)
  boxes[:, 3] = np.minimum(80, 640 - boxes[:, 1])
  boxes[::2, 0] = 0  # jitter at the left edge
  out = smoothing.smooth_boxes(t, boxes, 3, 640, 640)
  assert (out[:, :2] >= 0).all() and (out[:, 2:] >= 0).all()
  assert (out[:, 0] + out[:, 2] <= 640 + 1e-9).all() and (out[:, 1] + out[:, 3] <= 640 + 1e-9).all()


def test_corners_clipped_at_the_frame_edge_stay_and_the_rest_still_fit_the_motion():
  # An object entering at the top and leaving at the bottom at constant speed, clipped to the frame.
  t = np.arange(60.0)
  top, bottom = -60 + 12 * t, 12 * t
  corners = np.clip(np.stack([np.full_like(t, 200), top, np.full_like(t, 260), bottom], 1), 0, 640)
  boxes = _xywh(corners)
  keep = boxes[:, 3] > 0
  np.testing.assert_allclose(smoothing.smooth_boxes(t[keep], boxes[keep], 3, 640, 640), boxes[keep], atol=1e-9)


def test_under_constant_acceleration_the_interior_is_off_by_twice_the_acceleration():
  t = np.arange(30.0)
  a = 0.41  # px/frame², the scene's gravity
  y = 100 + 3 * t + a * t**2 / 2
  boxes = np.stack([np.full_like(t, 50), y, np.full_like(t, 40), np.full_like(t, 40)], 1)
  out = smoothing.smooth_boxes(t, boxes, 3, 640, 2000)
  np.testing.assert_allclose(out[3:-3, 1] - y[3:-3], 2 * a, atol=1e-9)


def test_steady_width_gives_a_track_its_median_width_and_leaves_outliers_and_edge_boxes():
  widths = [60.0, 62.0, 58.0, 61.0, 59.0, 100.0, 60.0]  # one box 100 px wide: on something else
  boxes = np.array([[200.0, 50.0 + 30 * i, w, 80.0] for i, w in enumerate(widths)] + [[0.0, 300.0, 40.0, 80.0]])
  out = smoothing.steady_width(boxes, 0.2, 640, 640, 2.0)
  np.testing.assert_allclose(out[:, 2], [60, 60, 60, 60, 60, 100, 60, 40])  # the median of the 7 clear boxes
  centres = lambda b: b[:, 0] + b[:, 2] / 2
  np.testing.assert_allclose(centres(out), centres(boxes))  # about the centre
  np.testing.assert_allclose(out[:, [1, 3]], boxes[:, [1, 3]])  # heights and y untouched
  np.testing.assert_allclose(smoothing.steady_width(boxes[:4], 0.2, 640, 640, 2.0), boxes[:4])  # too few boxes
  np.testing.assert_allclose(smoothing.steady_width(boxes, 0.05, 640, 640, 2.0)[:, 2],
                             [60, 60, 60, 60, 60, 100, 60, 40])  # within 5 %
  np.testing.assert_allclose(smoothing.steady_width(boxes, 0.02, 640, 640, 2.0)[:, 2],
                             [60, 62, 58, 60, 60, 100, 60, 40])  # within 2 %: 59 and 61
