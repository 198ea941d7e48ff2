"""The shipped model loads with this version of the code and runs frame by frame."""
import collections

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from data_prep import synth
from mottr import predictor as predictor_lib
from mottr.schema import UserError
from mottr.model.motr import DecoderOutput
from mottr import schema


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


def test_deleted_options_are_unknown_keys():
  with pytest.raises(UserError, match="model.detached_births=True: unknown key"):
    predictor_lib.load_predictor(None, {"model.detached_births": True})


def _decoder_output(boxes, scores):
  """One-layer, one-image DecoderOutput with the given [N, 4] boxes and [N] bolt scores."""
  boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
  logits = np.stack([np.log(scores / (1 - scores)), np.full_like(scores, -9.0)], -1)
  return DecoderOutput(jnp.asarray(logits)[None, None], jnp.asarray(boxes)[None, None],
                       jnp.zeros((1, len(boxes), 8)))


def test_snap_tracks_takes_the_best_overlapping_confident_detection():
  s = 3  # slots: near a confident detection, near only a faint one, far from all
  track = [[0.30, 0.30, 0.10, 0.10], [0.70, 0.70, 0.10, 0.10], [0.50, 0.10, 0.10, 0.10]]
  out = _decoder_output(track + [[0.5, 0.5, 0.1, 0.1]] * 3, [0.9] * 6)
  detect = [[0.31, 0.31, 0.10, 0.10], [0.29, 0.30, 0.12, 0.10], [0.70, 0.71, 0.10, 0.10]]
  detections = _decoder_output([[0.5, 0.5, 0.1, 0.1]] * s + detect, [0.1] * s + [0.95, 0.8, 0.2])
  snapped = np.asarray(predictor_lib.snap_tracks(out, detections, s).boxes[-1, 0])
  np.testing.assert_allclose(snapped[0], detect[1])  # IoU 0.83 (score 0.8) beats 0.68 (score 0.95)
  np.testing.assert_allclose(snapped[1:s], track[1:], atol=1e-7)  # faint detection; nothing near
  np.testing.assert_allclose(snapped[s:], np.asarray(out.boxes[-1, 0, s:]))  # detect queries kept


def test_snap_tracks_grows_a_part_box_to_the_confident_box_of_the_whole():
  s = 1  # the track boxes the upper half of a bolt; a detection boxes that half, another the whole bolt
  half, whole = [0.50, 0.46, 0.06, 0.10], [0.50, 0.50, 0.06, 0.20]  # half: 90 % of the track's box
  out = _decoder_output([[0.50, 0.45, 0.06, 0.10]] + [[0.2, 0.2, 0.1, 0.1]] * 2, [0.9] * 3)
  snap = lambda whole_score: np.asarray(predictor_lib.snap_tracks(
      out, _decoder_output([[0.2, 0.2, 0.1, 0.1], half, whole], [0.1, 0.5, whole_score]), s).boxes[-1, 0, 0])
  np.testing.assert_allclose(snap(0.9), whole, atol=1e-7)  # it holds the track's box: IoU 0.5 + 0.9 beats IoU 0.82
  np.testing.assert_allclose(snap(0.3), half, atol=1e-7)  # 0.5 + 0.3 does not


def test_snap_tracks_is_one_to_one_and_skips_empty_slots():
  s = 3  # two live slots on one object (the second overlapping its detection less), one empty slot on it too
  track = [[0.30, 0.30, 0.10, 0.10], [0.30, 0.32, 0.10, 0.10], [0.30, 0.30, 0.10, 0.10]]
  out = _decoder_output(track + [[0.5, 0.5, 0.1, 0.1]] * 3, [0.9] * 6)
  detect = [[0.30, 0.305, 0.10, 0.10], [0.70, 0.70, 0.10, 0.10], [0.30, 0.34, 0.10, 0.10]]
  detections = _decoder_output([[0.5, 0.5, 0.1, 0.1]] * s + detect, [0.1] * s + [0.95, 0.9, 0.35])
  valid = jnp.asarray([[True, True, False]])
  snapped = np.asarray(predictor_lib.snap_tracks(out, detections, s, valid).boxes[-1, 0])
  np.testing.assert_allclose(snapped[0], detect[0])  # IoU 0.9 with detection 0
  # Slot 1 overlaps detection 0 more (0.75) than detection 2 (0.67), but slot 0 took it.
  np.testing.assert_allclose(snapped[1], detect[2])
  np.testing.assert_allclose(snapped[2], track[2], atol=1e-7)  # an empty slot takes nothing
  # Without the one-to-one rule both live slots would share detection 0's box.
  alone = np.asarray(predictor_lib.snap_tracks(out, detections, s, jnp.asarray([[False, True, False]])).boxes[-1, 0])
  np.testing.assert_allclose(alone[1], detect[0])


@pytest.fixture(scope="module")
def rendered_frames(tmp_path_factory):
  """Two consecutive frames of a rendered synthetic clip with objects in view."""
  root = str(tmp_path_factory.mktemp("synth"))
  synth.generate_split(root, "val", 60, 3, rle=False, progress=False)
  coco = schema.load_annotations(root, "val")
  busiest = collections.Counter(a["image_id"] for a in coco["annotations"]).most_common(1)[0][0]
  index = min(busiest - 1, 58)  # image_id = frame index + 1
  cap = cv2.VideoCapture(schema.video_path(root, "val"))
  cap.set(cv2.CAP_PROP_POS_FRAMES, index)
  frames = [cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB) for _ in range(2)]
  cap.release()
  return frames


def test_snapped_tracks_report_and_carry_a_detection_box(rendered_frames):
  plain = predictor_lib.load_predictor(None, {"model.snap_tracks": False})
  snap = predictor_lib.load_predictor(None, {"model.snap_tracks": True})
  alone = predictor_lib.load_predictor(None, {"model.snap_tracks": False})
  size, s = plain.input_size, plain.num_slots
  frames = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in rendered_frames]
  first = plain.step(frames[0])
  next_slots = np.full(s, -1, np.int32)
  next_slots[:4] = s + np.argsort(-first.scores[s:])[:4]  # the four best detections become tracks
  plain.carry(next_slots)
  snap.reset()
  snap.step(frames[0])
  snap.carry(next_slots)
  joint, snapped = plain.step(frames[1]), snap.step(frames[1])
  no_tracks = alone.step(frames[1])
  np.testing.assert_allclose(snapped.scores, joint.scores, atol=1e-5)  # only track boxes change
  np.testing.assert_allclose(snapped.boxes[s:], joint.boxes[s:], atol=1e-5)
  taken = 0
  for k in range(s):  # each slot keeps its own box or takes one detection of the decode without tracks
    own = np.abs(snapped.boxes[k] - joint.boxes[k]).max() < 1e-5
    took = np.abs(no_tracks.boxes[s:] - snapped.boxes[k]).max(-1).min() < 1e-5
    assert own or took
    taken += took and not own
  assert taken >= 1  # the rendered objects are detected, so live tracks do snap
  # The track-free decode comes back too (the entry backfill may read it): no_tracks' detect queries.
  assert joint.track_free is None and snapped.track_free.num_slots == 0
  np.testing.assert_allclose(snapped.track_free.scores, no_tracks.scores[s:], atol=1e-5)
  np.testing.assert_allclose(snapped.track_free.boxes, no_tracks.boxes[s:], atol=1e-5)
  np.testing.assert_array_equal(snapped.track_free.labels, no_tracks.labels[s:])
  snap.carry(np.arange(s, dtype=np.int32))
  np.testing.assert_allclose(np.asarray(snap._tracks.ref[0]), snapped.boxes[:s], atol=1e-5)
