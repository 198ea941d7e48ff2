"""scripts/bench/diagnose_boxes.py: matching, edge split, bias statistics and their correction."""

import numpy as np

import diagnose_boxes as db


def _biased(gt, w_scale, h_scale, dx, dy):
  """xywh predictions with w, h scaled and the centre moved by dx * gt_w, dy * gt_h."""
  gt = np.asarray(gt, np.float64)
  cx, cy = gt[:, 0] + gt[:, 2] / 2 + dx * gt[:, 2], gt[:, 1] + gt[:, 3] / 2 + dy * gt[:, 3]
  w, h = gt[:, 2] * w_scale, gt[:, 3] * h_scale
  return np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)


def test_greedy_match_takes_the_best_overlap_once_and_respects_the_threshold():
  gt = np.array([[100, 100, 50, 50], [300, 300, 40, 40], [500, 100, 40, 40]], np.float64)
  pred = np.array([[102, 100, 50, 50],    # gt 0, IoU 0.92
                   [110, 100, 50, 50],    # also gt 0 but worse: left unmatched
                   [300, 300, 40, 40],    # gt 1 exactly
                   [530, 100, 40, 40]],   # gt 2 at IoU 0.14: below 0.5
                  np.float64)
  pairs = db.greedy_match(gt, pred, 0.5)
  assert [(g, p) for g, p, _ in pairs] == [(1, 2), (0, 0)]
  np.testing.assert_allclose(pairs[1][2], 48 * 50 / (2 * 2500 - 48 * 50))
  assert db.greedy_match(gt[:0], pred) == [] and db.greedy_match(gt, pred[:0]) == []


def test_match_frames_keeps_classes_apart_and_splits_edges():
  gt = {1: [(1, np.array([0.0, 200, 60, 80])), (2, np.array([300.0, 300, 40, 40]))],
        2: [(1, np.array([200.0, 200, 60, 80]))]}
  det = {1: [(1, np.array([1.0, 200, 60, 80])), (1, np.array([300.0, 300, 40, 40]))],  # nut as bolt
         2: [(1, np.array([200.0, 202, 60, 80]))]}
  pairs, counts = db.match_frames(gt, det)
  assert counts == {1: {"gt": 2, "matched": 2}, 2: {"gt": 1, "matched": 0}}
  assert sorted((p.image_id, p.edge) for p in pairs) == [(1, True), (2, False)]
  assert db.touches_edge([100, 100, 50, 50]) is False
  assert db.touches_edge([100, 0, 50, 20]) and db.touches_edge([600, 100, 38.5, 50])


def test_bias_statistics_and_correction_recover_a_known_bias():
  rng = np.random.default_rng(0)
  xy = rng.uniform(50, 500, (40, 2))
  wh = rng.uniform(30, 120, (40, 2))
  gt = np.concatenate([xy, wh], axis=1)
  pred = _biased(gt, 0.9, 1.2, 0.05, -0.1)
  pairs = [db.Pair(1 + i % 2, False, g, p, float(db.iou_matrix(g, p)[0, 0])) for i, (g, p)
           in enumerate(zip(gt, pred))]
  stats = db.summarize(pairs)
  for name in ("bolt", "nut"):
    s = stats[(name, "inside")]
    assert s["n"] == 20 and stats[(name, "edge")]["n"] == 0
    np.testing.assert_allclose(s["median"], [np.log(0.9), np.log(1.2), 0.05, -0.1], atol=1e-9)
    np.testing.assert_allclose(s["mean"], s["median"], atol=1e-9)
    assert s["iou"] < 0.8
  bias = db.class_bias(pairs)
  np.testing.assert_allclose(bias[1], [np.log(0.9), np.log(1.2), 0.05, -0.1], atol=1e-9)
  np.testing.assert_allclose(db.correct(pred, bias[1]), gt, atol=1e-6)  # undone exactly
  np.testing.assert_allclose(db.corrected_iou(pairs, bias), 1.0)
  # The median ignores a few wild pairs; no pairs -> no correction.
  wild = pairs + [db.Pair(1, False, gt[0], _biased(gt[:1], 3.0, 3.0, 1, 1)[0], 0.1)]
  np.testing.assert_allclose(db.class_bias(wild)[1][:2], [np.log(0.9), np.log(1.2)], atol=1e-9)
  np.testing.assert_array_equal(db.fit_bias(np.zeros((0, 4))), np.zeros(4))


def test_oracle_boxes():
  pred = {"annotations": [{"image_id": 1, "category_id": 1, "bbox": [102, 100, 50, 50], "score": .9},
                          {"image_id": 1, "category_id": 2, "bbox": [102, 100, 50, 50], "score": .1},
                          {"image_id": 1, "category_id": 1, "bbox": [400, 400, 50, 50], "score": .5}]}
  gt = {1: [(1, np.array([100.0, 100, 50, 50]))]}
  out = [a["bbox"] for a in db.oracle_boxes(pred, gt)["annotations"]]
  assert out == [[100.0, 100.0, 50.0, 50.0], [102, 100, 50, 50], [400, 400, 50, 50]]
  # IoU 0.92: replaced among the fine errors only, kept among the gross ones.
  assert db.oracle_boxes(pred, gt, 0.75)["annotations"][0]["bbox"] == [100.0, 100.0, 50.0, 50.0]
  assert db.oracle_boxes(pred, gt, 0.5, 0.75)["annotations"][0]["bbox"] == [102, 100, 50, 50]


def test_overlay_tags_are_found_above_a_box_only():
  img = np.zeros((640, 640, 3), np.uint8)
  img[90:102, 200:250] = (0, 165, 255)  # an orange (BGR) label tag like the dense clip's overlays
  mask = db.overlay_tag_mask(img)
  assert mask.sum() == 12 * 50
  assert db.tag_above(mask, [200, 103, 60, 80])
  assert not db.tag_above(mask, [400, 103, 60, 80]) and not db.tag_above(mask, [200, 300, 60, 80])


def test_border_margins_read_the_padding_of_a_box():
  img = np.full((200, 200), 40.0, np.float32)
  img[60:120, 80:110] = 200.0  # a sharp object, x 80-109, y 60-119
  mag = db.gradient_magnitude(img)
  tight = db.border_margins(mag, [80, 60, 30, 60])
  padded = db.border_margins(mag, [76, 56, 38, 68])  # 4 px of background on every side
  np.testing.assert_array_equal(padded - tight, [4, 4, 4, 4])
  assert np.all(np.abs(tight) <= 1)
  assert db.border_margins(mag, [3, 60, 30, 60]) is None  # too close to the image border
  m = db.margins_of([(1, img)], {1: [(2, np.array([76.0, 56, 38, 68]))]})
  np.testing.assert_array_equal(m[2], [padded])
