"""The shipped model loads with this version of the code and runs frame by frame."""
import numpy as np

from mottr import predictor as predictor_lib


def test_shipped_model_loads_and_tracks_a_query():
  p = predictor_lib.load_predictor()
  size = p.input_size
  frame = np.full((size, size, 3), 90, np.uint8)
  frame[size // 4:size // 4 + 20, size // 2:size // 2 + 12] = 200  # something to look at
  p.reset(frame_gap=2.0)
  out = p.step(frame)
  n = p.num_slots + p.config.model.num_queries
  assert out.scores.shape == (n,) and out.boxes.shape == (n, 4) and out.labels.shape == (n,)
  assert ((out.scores >= 0) & (out.scores <= 1)).all() and not out.slot_valid.any()
  assert out.class_scores.shape == (n, p.config.model.num_classes)
  np.testing.assert_array_equal(out.class_scores.max(-1), out.scores)
  np.testing.assert_array_equal(out.class_scores.argmax(-1), out.labels)
  next_slots = np.full(p.num_slots, -1, np.int32)
  next_slots[0] = p.num_slots  # the first detect query becomes track slot 0
  p.carry(next_slots)
  second = p.step(frame)
  assert second.slot_valid[0] and not second.slot_valid[1:].any()
  assert np.isfinite(second.boxes).all()
