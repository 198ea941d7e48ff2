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


def test_detached_births_decode_detect_queries_without_the_tracks():
  joint = predictor_lib.load_predictor()
  detached = predictor_lib.load_predictor(None, {"model.detached_births": True})
  alone = predictor_lib.load_predictor()
  size, s = joint.input_size, joint.num_slots
  rng = np.random.default_rng(0)
  frames = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(2)]
  next_slots = np.full(s, -1, np.int32)
  next_slots[:3] = s + np.arange(3)  # three detect queries become tracks
  for p in (joint, detached):
    p.reset()
    p.step(frames[0])
    p.carry(next_slots)
  with_tracks, births = joint.step(frames[1]), detached.step(frames[1])
  alone.reset()
  no_tracks = alone.step(frames[1])
  # Track slots come from the decode with the tracks, detect queries from the decode without.
  np.testing.assert_allclose(births.boxes[:s], with_tracks.boxes[:s], atol=1e-5)
  np.testing.assert_allclose(births.scores[s:], no_tracks.scores[s:], atol=1e-5)
  np.testing.assert_allclose(births.boxes[s:], no_tracks.boxes[s:], atol=1e-5)
  assert np.abs(with_tracks.scores[s:] - no_tracks.scores[s:]).max() > 1e-4  # the tracks do change them
  # A birth carries the detached decode's query: next frame's slot starts from that box.
  detached.carry(np.array([s] + [-1] * (s - 1), np.int32))
  assert detached.step(frames[0]).slot_valid[0]
  np.testing.assert_allclose(np.asarray(detached._tracks.ref[0, 0]), no_tracks.boxes[s], atol=1e-5)
