"""The crop refiner: crop geometry, inference on a frame's output, training, resume, export and load."""
import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_prep import synth
from mottr import boxes as boxes_lib
from mottr import checkpoint
from mottr import config as config_lib
from mottr import predictor as predictor_lib
from mottr import train_refiner
from mottr.model import crop_refiner
from mottr.predictor import FrameOutput, frame_output, load_predictor
from mottr.refiner import BoxRefiner
from mottr.schema import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_settings(**kw):
  c = config_lib.get_config()
  c.refiner.update(dict(crop_size=32, widths=(8, 8), hidden=16, batch_size=8, steps=4, warmup_steps=1,
                        checkpoint_every=2, synth_every=3, synth_frames=10), **kw)
  return c


def test_crop_coordinates_round_trip_and_cut_places_the_box():
  image = np.zeros((120, 160, 3), np.uint8)
  image[40:60, 50:90] = 255  # a white box x 50-90, y 40-60
  box = np.float32([[50, 40, 90, 60]])
  regions = crop_refiner.crop_regions(box, grow=2.0)
  np.testing.assert_allclose(regions, [[30, 30, 80, 40]])
  edges = crop_refiner.to_crop(box, regions)
  np.testing.assert_allclose(edges, [[0.25, 0.25, 0.75, 0.75]])
  np.testing.assert_allclose(crop_refiner.from_crop(edges, regions), box, atol=1e-5)
  crop = crop_refiner.cut(image, regions[0], 32)
  ys, xs = np.nonzero(crop[..., 0] > 127)
  assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (8, 24, 8, 24)
  outside = crop_refiner.cut(image, np.float32([-40, -40, 80, 80]), 32)
  assert outside[:8, :8].max() == 0  # black beyond the frame


def test_cut_of_the_mirrored_frame_is_the_mirrored_cut():
  """Training flips crops left-right; a half-pixel offset in `cut` would flip with them and teach the
  refiner a blur of two conventions (bolts came out 0.5-0.8 px right of the truth)."""
  image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
  for region in [np.float32([13.3, 20.7, 90.2, 70.1]), np.float32([41.0, 9.5, 20.3, 17.8])]:  # shrunk, grown
    mirrored = np.float32([160 - region[0] - region[2], region[1], region[2], region[3]])
    a = crop_refiner.cut(image, region, 32)[:, ::-1].astype(int)
    b = crop_refiner.cut(image[:, ::-1].copy(), mirrored, 32).astype(int)
    assert np.abs(a - b).max() <= 1, np.abs(a - b).max()


def test_edge_distribution_head_starts_at_the_given_edges_and_learns():
  """The "edges" head reads each edge off a softmax over the crop's columns or rows, started by a
  prior about the given edge: a new one returns about the given edges; a few steps move them."""
  c = tiny_settings(head="edges", class_aware=True, crop_size=64, widths=(8, 8, 8))
  model = crop_refiner.build_refiner(c.refiner)
  params = crop_refiner.init_params(model, 64)
  crops = np.zeros((2, 64, 64, 3), np.uint8)
  crops[:, 16:48, 20:40] = 255  # an object at x 20-40, y 16-48 of 64
  given = jnp.float32([[0.25, 0.2, 0.7, 0.8], [0.35, 0.3, 0.6, 0.7]])
  truth = jnp.float32([[20, 16, 40, 48]] * 2) / 64
  labels = jnp.int32([0, 1])
  edges, logits = model.apply(params, crops, given, labels)
  np.testing.assert_allclose(edges, given, atol=2e-3)
  assert logits.shape == (2,)
  loss = lambda p: jnp.abs(model.apply(p, crops, given, labels)[0] - truth).mean()
  opt = optax.adam(1e-2)
  state, before = opt.init(params), float(loss(params))
  @jax.jit
  def step(params, state):
    updates, state = opt.update(jax.grad(loss)(params), state)
    return optax.apply_updates(params, updates), state
  for _ in range(30):
    params, state = step(params, state)
  assert float(loss(params)) < 0.5 * before
  with pytest.raises(UserError, match="refiner.head"):
    crop_refiner.build_refiner(tiny_settings(head="heatmap").refiner)


def test_new_refiner_is_the_identity_and_only_confident_boxes_move():
  c = tiny_settings(min_score=0.5)
  params = crop_refiner.init_params(crop_refiner.build_refiner(c.refiner), 32)
  frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
  boxes = np.float32([[0.5, 0.5, 0.2, 0.3]] * 11)
  refined, logits = BoxRefiner(c.refiner, params).refine(frame, boxes, np.zeros(11, np.int32))
  np.testing.assert_allclose(refined, boxes, atol=1e-5)
  assert logits is None  # class-agnostic
  # a refiner that moves every box right by a tenth of its crop
  moved = jax.tree_util.tree_map_with_path(
      lambda path, v: v + np.float32([0.1, 0, 0.1, 0]) if "Dense_1" in jax.tree_util.keystr(path)
      and v.ndim == 1 else v, params)
  refiner = BoxRefiner(c.refiner, moved)
  scores = np.float32([0.9, 0.2, 0.6])
  mine = boxes[:3] + np.float32([[0, 0, 0, 0], [-0.2, 0, 0, 0], [0.1, 0.1, 0, 0]])
  free = np.stack([boxes[0] - np.float32([0.1, 0, 0, 0]), mine[2]])  # the second is a snapped track's box
  out = FrameOutput(scores, np.zeros(3, np.int32), mine.copy(), 1, np.ones(1, bool),
                    track_free=FrameOutput(np.float32([0.1, 0.7]), np.zeros(2, np.int32), free.copy(), 0,
                                           np.zeros(0, bool)))
  new = refiner.refine_output(frame, out)
  shift = 0.1 * 0.2 * c.refiner.grow  # a tenth of the crop, in frame widths
  np.testing.assert_allclose(new.boxes[:, 0] - mine[:, 0], [shift, 0.0, shift], atol=1e-5)
  np.testing.assert_allclose(new.track_free.boxes[:, 0] - free[:, 0], [0.0, shift], atol=1e-5)
  np.testing.assert_allclose(new.boxes[:, 1:], mine[:, 1:], atol=1e-5)
  np.testing.assert_allclose(new.track_free.boxes[:, 1:], free[:, 1:], atol=1e-5)
  np.testing.assert_array_equal(out.boxes, mine)  # the input is not changed
  # two passes move the box twice (the second crop is cut about the moved box); the flipped crops
  # move it left as much as the plain ones move it right, so their average stays
  for passes, flip, moves in [(2, False, 2), (3, False, 3), (2, True, 0)]:
    c.refiner.update(passes=passes, flip=flip)
    again, _ = BoxRefiner(c.refiner, moved).refine(frame, boxes[:2], np.zeros(2, np.int32))
    np.testing.assert_allclose(again[:, 0] - boxes[:2, 0], moves * shift, atol=1e-5)
    np.testing.assert_allclose(again[:, 1:], boxes[:2, 1:], atol=1e-5)
  c.refiner.passes = 0
  with pytest.raises(UserError, match="refiner.passes=0"):
    BoxRefiner(c.refiner, moved)


def test_class_aware_refiner_refines_each_class_apart_and_rescores():
  c = tiny_settings(min_score=0.5, class_aware=True, rescore=1.0)
  params = crop_refiner.init_params(crop_refiner.build_refiner(c.refiner), 32)
  frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
  # a refiner that moves nut boxes (class 1) right by a tenth of the crop, with logit 2 for bolts and -2 for nuts
  def edit(path, v):
    name = jax.tree_util.keystr(path)
    if "Embed_0" in name:
      return v.at[:, 0].set(jnp.float32([0.0, 1.0]))
    if "Dense_1" in name and "kernel" in name:
      return v.at[0, 0].set(0.1).at[0, 2].set(0.1)
    if "Dense_2" in name:
      return jnp.zeros_like(v).at[0, 0].set(-4.0) if "kernel" in name else v.at[0].set(2.0)
    return jnp.zeros_like(v) if "Dense_0" in name else v
  refiner = BoxRefiner(c.refiner, jax.tree_util.tree_map_with_path(edit, params))
  box = np.float32([0.5, 0.5, 0.2, 0.3])
  free = FrameOutput(np.float32([0.9]), np.int32([0]), box[None].copy(), 0, np.zeros(0, bool))
  out = FrameOutput(np.float32([0.9, 0.8, 0.2, 0.7]), np.int32([0, 1, 1, 0]), np.stack([box] * 4), 1,
                    np.ones(1, bool), class_scores=np.float32([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.7, 0.3]]),
                    track_free=free)
  new = refiner.refine_output(frame, out)
  shift = 0.1 * 0.2 * c.refiner.grow
  np.testing.assert_allclose(new.boxes[:, 0] - box[0], [0.0, shift, 0.0, 0.0], atol=1e-5)  # the same box, told apart
  sigmoid = lambda x: 1 / (1 + np.exp(-x))
  # the track slot (query 0) keeps its score; the detect queries are rescored
  np.testing.assert_allclose(new.scores, [0.9, 0.8 * sigmoid(-2.0), 0.2, 0.7 * sigmoid(2.0)], rtol=1e-5)
  np.testing.assert_allclose(new.class_scores[1], out.class_scores[1] * sigmoid(-2.0), rtol=1e-5)
  np.testing.assert_array_equal(new.class_scores[2], out.class_scores[2])  # below min_score: as it was
  np.testing.assert_array_equal(new.track_free.scores, free.scores)  # the track-free decode: refined, not rescored
  np.testing.assert_allclose(new.track_free.boxes, box[None], atol=1e-5)


def test_class_aware_samples_stretched_boxes_and_negatives():
  c = tiny_settings(class_aware=True, union_prob=0.4, negative_prob=0.4)
  image = np.zeros((200, 200, 3), np.uint8)
  boxes = np.float32([[40, 40, 80, 60], [82, 42, 100, 60], [150, 150, 190, 190]])  # the first two touch
  frames = [(image, boxes, np.int32([0, 1, 0]))]
  pairs = train_refiner.touching_pairs(frames)
  assert sorted(pairs) == [(0, 0, 1), (0, 1, 0)]
  rng = np.random.default_rng(0)
  for _ in range(20):
    hull = train_refiner.stretched(boxes[0], boxes[1], False, c.refiner, rng)
    assert hull[2] > 81  # leans over the neighbour
  far = [train_refiner.background(boxes, 200, 200, rng) for _ in range(20)]
  assert boxes_lib.pairwise_iou(np.stack(far), boxes)[0].max() < 0.1
  crops, given, truth, labels, positive = train_refiner.sample([frames], np.ones(1), c.refiner, rng, 200,
                                                              augment=False, pairs=[pairs])
  assert crops.shape == (200, 32, 32, 3) and set(labels) == {0, 1}
  assert 0.25 < 1 - positive.mean() < 0.55  # about negative_prob negatives
  wide = (given[:, 2] - given[:, 0]) / (truth[:, 2] - truth[:, 0])
  assert (wide[positive > 0] > 1.3).mean() > 0.2  # the stretched ones


def test_hard_negatives_are_the_detectors_confident_boxes_on_no_object_and_are_sampled(monkeypatch):
  image = np.zeros((200, 100, 3), np.uint8)
  image[150:170, 60:80] = 255  # what the detector took for a nut
  truth = np.float32([[10, 20, 30, 60]])
  frames = [(image, truth, np.int32([0]))]
  inputs = []

  class Detector:
    input_size = 32

    def reset(self):
      pass

    def step(self, rgb):
      inputs.append(rgb.shape)
      probs = np.float32([[0.9, 0.0], [0.8, 0.1], [0.1, 0.6], [0.02, 0.03], [0.7, 0.1]])  # a track slot, 4 detect queries
      boxes = np.float32([[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2], [0.7, 0.8, 0.2, 0.1], [0.7, 0.3, 0.2, 0.1],
                          [0.5, 0.02, 0.2, 0.04]])
      return frame_output(probs, boxes, np.ones(1, bool), 1)

  monkeypatch.setattr(predictor_lib, "load_predictor", lambda model_dir: Detector())
  hard = train_refiner.detector_negatives(frames, "shipped", 0.05)
  assert inputs == [(32, 32, 3)]
  # the track slot, the box on the truth, the unconfident one and the one at the top edge are left out
  assert len(hard) == 1 and hard[0][0] == 0 and hard[0][2] == 1
  np.testing.assert_allclose(hard[0][1], [60, 150, 80, 170], atol=1e-4)

  c = tiny_settings(class_aware=True, union_prob=0.0, negative_prob=0.0, hard_negative_prob=0.5)
  crops, _, _, labels, positive = train_refiner.sample([frames], np.ones(1), c.refiner, np.random.default_rng(0),
                                                       100, augment=False, pairs=[[]], hard=[hard])
  negative = positive == 0
  assert 0.3 < negative.mean() < 0.7
  assert (labels[negative] == 1).all() and (labels[~negative] == 0).all()
  assert crops[negative][:, 16, 16].min() == 255 and crops[~negative][:, 16, 16].max() == 0  # cut at the false box
  # a set without hard negatives gets plain ones (background, other class) in their place
  _, _, _, _, positive = train_refiner.sample([frames], np.ones(1), c.refiner, np.random.default_rng(0), 100,
                                              augment=False, pairs=[[]], hard=[[]])
  assert 0.3 < 1 - positive.mean() < 0.7


@pytest.fixture(name="synth_root", scope="module")
def fixture_synth_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("refiner_root"))
  synth.generate_split(root, "train", 60, 3, progress=False)
  return root


def test_training_learns_and_resumes_bit_exact(synth_root, tmp_path):
  c = tiny_settings(steps=200, checkpoint_every=100, lr=3e-3, batch_size=16)
  c.data.synth_root = synth_root
  frames = train_refiner.synth_set(synth_root, 3, 10, (4, 5))
  assert len(frames) == 10 and all(len(b) == len(k) for _, b, k in frames)
  lines = []
  whole = train_refiner.train_refiner(c, str(tmp_path / "whole"), log=lines.append)
  assert len(lines) == 2
  apply = jax.jit(crop_refiner.build_refiner(c.refiner).apply)
  means = train_refiner.validate(apply, whole, frames, c.refiner, seed=1)
  assert means["moved after"] > means["moved before"] + 0.02, means  # it learnt to move boxes onto the objects
  train_refiner.train_refiner(c, str(tmp_path / "split"), stop_at=100, log=lines.append)
  resumed = train_refiner.train_refiner(c, str(tmp_path / "split"), log=lines.append)
  assert lines[3] == "resumed at step 100"
  jax.tree.map(np.testing.assert_array_equal, whole, resumed)


def test_export_attaches_the_refiner_and_predictor_loads_it(synth_root, tmp_path):
  c = tiny_settings(steps=2)
  c.data.synth_root = synth_root
  train_refiner.train_refiner(c, str(tmp_path / "refiner"), log=lambda *_: None)
  out = str(tmp_path / "model")
  run = lambda *args: subprocess.run([sys.executable, "-m", "mottr.export", *args], cwd=REPO,
                                     capture_output=True, text=True)
  done = run("--workdir", checkpoint.SHIPPED_CHECKPOINT, "--refiner", str(tmp_path / "refiner"), "--out", out)
  assert done.returncode == 0, done.stderr
  predictor = load_predictor(out)
  assert predictor.refiner is not None and predictor.refiner.size == 32
  assert load_predictor(out, {"refiner.enabled": False}).refiner is None
  copy = str(tmp_path / "copy")  # an export of a model with a refiner keeps it
  assert run("--workdir", out, "--out", copy).returncode == 0
  assert sorted(os.listdir(copy)) == ["config.json", "params.msgpack", "refiner.msgpack"]
  os.remove(os.path.join(copy, "refiner.msgpack"))
  with pytest.raises(UserError, match="refiner.msgpack: missing"):
    load_predictor(copy)
  with pytest.raises(UserError, match="does not fit config.refiner"):
    load_predictor(out, {"refiner.hidden": 32})


def test_training_without_data_is_one_line(tmp_path):
  c = tiny_settings()
  c.data.real_root = c.data.synth_root = ""
  with pytest.raises(UserError, match="trains on truth boxes"):
    train_refiner.train_refiner(c, str(tmp_path))
