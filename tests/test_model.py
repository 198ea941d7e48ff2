"""MOTR shapes/dtypes, query carrying, and the clip objective's bookkeeping."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from mottr import criterion, matching
from mottr.model.motr import MOTR, BoxRefine, bilinear_sample, build_model, carry_tracks, empty_tracks
from mottr.schema import UserError


def _setup():
  config = tiny.get_config()
  model = build_model(config)
  size = config.model.image_size
  images = jnp.zeros((2, size, size, 3), jnp.uint8)
  tracks = empty_tracks(2, config.model.num_slots, config.model.d_model)
  return config, model, jax.jit(model.init)(jax.random.key(0), images, tracks), images, tracks


def _one_box_batch(config, images):
  """Two 2-frame clips of `images`, each frame with one box."""
  m = config.data.max_objects
  return {"image": jnp.stack([images, images], 1), "boxes": jnp.full((2, 2, m, 4), 0.3, jnp.float32),
          "labels": jnp.zeros((2, 2, m), jnp.int32), "mask": jnp.zeros((2, 2, m), bool).at[:, :, 0].set(True),
          "gap": jnp.array([1.0, 2.0])}


def test_shapes_and_dtypes():
  config, model, params, images, tracks = _setup()
  mc = config.model
  memory = model.apply(params, images, method=MOTR.encode)
  cells = (mc.image_size // 2**len(mc.backbone_widths))**2
  assert memory.features.shape == (2, cells, mc.d_model) and memory.features.dtype == jnp.float32
  assert memory.proposal_boxes.shape == (2, cells, 4)
  out = model.apply(params, memory, tracks, jnp.ones(2), method=MOTR.decode)
  n = mc.num_slots + mc.num_queries
  assert out.logits.shape == (mc.dec_layers, 2, n, mc.num_classes)
  assert out.boxes.shape == (mc.dec_layers, 2, n, 4) and out.hidden.shape == (2, n, mc.d_model)
  assert float(out.boxes.min()) >= 0 and float(out.boxes.max()) <= 1


def test_bfloat16_compute_keeps_float32_parameters_and_outputs():
  """config.model.dtype=bfloat16: the same float32 parameter tree (checkpoints load either way),
  float32 logits, boxes and carried queries, and outputs near the float32 model's; the loss and
  its gradients stay finite and float32."""
  config, model, params, _, tracks = _setup()
  config.model.dtype = "bfloat16"
  half = build_model(config)
  size = config.model.image_size
  images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (2, size, size, 3)), jnp.uint8)
  spec = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)
  assert spec(jax.eval_shape(half.init, jax.random.key(0), images, tracks)) == spec(params)
  full_out = model.apply(params, images, tracks)
  half_out = half.apply(params, images, tracks)
  assert half_out[0].features.dtype == jnp.bfloat16
  for full, low in [(full_out[1].logits, half_out[1].logits), (full_out[1].boxes, half_out[1].boxes),
                    (full_out[2], half_out[2])]:
    assert low.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(low), np.asarray(full), atol=0.1 * float(jnp.abs(full).max()))
  batch = _one_box_batch(config, images)
  grads = jax.jit(jax.grad(lambda p: criterion.clip_loss(half, p, batch, jax.random.key(0), config)[0]))(params)
  assert all(g.dtype == jnp.float32 and bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_unknown_dtype_is_one_line_error():
  config = tiny.get_config()
  config.model.dtype = "float16"
  with pytest.raises(UserError, match="config.model.dtype='float16'"):
    build_model(config)


def test_carry_tracks_moves_chosen_queries_into_slots():
  config, model, params, images, tracks = _setup()
  memory = model.apply(params, images, method=MOTR.encode)
  gap = jnp.ones(2)
  out = model.apply(params, memory, tracks, gap, method=MOTR.decode)
  next_slots = jnp.array([[5, -1, -1, -1], [-1, 7, 4, -1]])
  nxt = carry_tracks(model, params, out, tracks, gap, next_slots)
  np.testing.assert_array_equal(np.asarray(nxt.valid), np.asarray(next_slots) >= 0)
  np.testing.assert_allclose(np.asarray(nxt.ref[0, 0]), np.asarray(out.boxes[-1, 0, 5]))
  np.testing.assert_allclose(np.asarray(nxt.ref[1, 2]), np.asarray(out.boxes[-1, 1, 4]))
  assert float(jnp.abs(nxt.embed[0, 1:]).max()) == 0  # empty slots carry nothing


def test_carried_tracks_start_from_their_last_box_and_see_the_gap():
  config, model, params, images, tracks = _setup()
  memory = model.apply(params, images, method=MOTR.encode)
  slots = config.model.num_slots
  gap = jnp.array([2.0, 3.0])
  first = model.apply(params, memory, tracks, gap, method=MOTR.decode)
  born = carry_tracks(model, params, first, tracks, gap, jnp.array([[slots, -1, -1, -1], [-1, slots + 1, -1, -1]]))
  np.testing.assert_allclose(np.asarray(born.ref[0, 0]), np.asarray(first.boxes[-1, 0, slots]))
  np.testing.assert_allclose(np.asarray(born.ref[1, 1]), np.asarray(first.boxes[-1, 1, slots + 1]))
  # The gap reaches the live track queries' decoding.
  out = model.apply(params, memory, born, gap, method=MOTR.decode)
  other = model.apply(params, memory, born, gap * 2, method=MOTR.decode)
  assert float(jnp.abs(other.boxes[-1, 0, 0] - out.boxes[-1, 0, 0]).max()) > 0


def test_select_next_keeps_tracked_and_new_objects():
  target = jnp.array([0, -1, -1, 2, -1, -1])  # slot 0 tracks object 0; detect query 3 found object 2
  scores = jnp.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.1])
  next_slots, next_obj = criterion.select_next(target, scores, 2, jax.random.key(0), 0.0, 0.0)
  np.testing.assert_array_equal(np.asarray(next_slots), [0, 3])
  np.testing.assert_array_equal(np.asarray(next_obj), [0, 2])
  # Dropping every track and always inserting the best unmatched detect query as a false positive.
  next_slots, next_obj = criterion.select_next(target, scores, 2, jax.random.key(0), 1.0, 1.0)
  np.testing.assert_array_equal(np.asarray(next_slots), [3, 4])
  np.testing.assert_array_equal(np.asarray(next_obj), [2, -1])


def test_proposal_targets_put_objects_in_their_centre_cells():
  boxes = jnp.array([[0.1, 0.1, 0.1, 0.1], [0.9, 0.6, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]])
  classes, tboxes, weight = criterion.proposal_targets(boxes, jnp.array([0, 1, 0]), jnp.array([True, True, False]),
                                                       (4, 4), 2)
  assert float(weight.sum()) == 2 and float(weight[0]) == 1 and float(weight[2 * 4 + 3]) == 1
  assert float(classes[2 * 4 + 3, 1]) == 1 and float(classes[0, 0]) == 1 and float(classes.sum()) == 2
  np.testing.assert_allclose(np.asarray(tboxes[11]), [0.9, 0.6, 0.2, 0.2])


def test_clip_loss_is_finite_and_normalised_by_boxes():
  config, model, params, _, _ = _setup()
  size, m = config.model.image_size, config.data.max_objects
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 255, (2, 3, size, size, 3), dtype=np.uint8)),
           "boxes": jnp.asarray(rng.uniform(0.2, 0.8, (2, 3, m, 4)) * [1, 1, 0.2, 0.2], jnp.float32),
           "labels": jnp.asarray(rng.integers(0, 2, (2, 3, m)), jnp.int32),
           "mask": jnp.asarray(rng.uniform(size=(2, 3, m)) < 0.4), "gap": jnp.array([1.0, 2.0])}
  loss, metrics = jax.jit(lambda p: criterion.clip_loss(model, p, batch, jax.random.key(0), config))(params)
  assert np.isfinite(float(loss)) and float(loss) > 0
  assert set(criterion.TERMS) <= set(metrics)
  # The other Hungarian solver (loss.matcher) finds the same assignments, so the same loss.
  other = config.copy_and_resolve_references()
  other.loss.matcher = next(s for s in matching.SOLVERS if s != config.loss.matcher)
  same = jax.jit(lambda p: criterion.clip_loss(model, p, batch, jax.random.key(0), other)[0])
  np.testing.assert_allclose(float(same(params)), float(loss), rtol=1e-6)
  # Only "scipy" leaves the program for the host (which keeps it out of the compilation cache).
  for c, fn in ((config, lambda p: criterion.clip_loss(model, p, batch, jax.random.key(0), config)[0]), (other, same)):
    assert ("callback" in jax.jit(fn).lower(params).as_text()) == (c.loss.matcher == "scipy")


def test_cell_under_box_centres():
  from mottr.model.motr import cell_under
  boxes = jnp.array([[0.01, 0.01, 0.1, 0.1], [0.99, 0.01, 0.1, 0.1], [0.3, 0.6, 0.1, 0.1], [1.4, -0.2, 0.1, 0.1]])
  np.testing.assert_array_equal(np.asarray(cell_under(boxes, 16)), [0, 3, 2 * 4 + 1, 3])


def test_track_queries_see_the_frame_under_their_reference():
  config, model, params, images, tracks = _setup()
  memory = model.apply(params, images, method=MOTR.encode)
  cells = memory.features.shape[1]
  side = int(cells**0.5)
  live = tracks._replace(valid=tracks.valid.at[:, 0].set(True),
                         ref=tracks.ref.at[:, 0].set(jnp.array([0.2, 0.5, 0.1, 0.1])))
  gap = jnp.ones(2)
  under = int(np.floor(0.5 * side)) * side + int(np.floor(0.2 * side))  # the centre (0.2, 0.5)
  content = lambda feats: model.apply(params, memory._replace(features=feats), live, gap,
                                     method=MOTR.track_content)
  base = content(memory.features)
  elsewhere = content(memory.features.at[:, (under + 1) % cells].add(5.0))
  at_cell = content(memory.features.at[:, under].add(5.0))
  np.testing.assert_allclose(np.asarray(elsewhere), np.asarray(base), atol=1e-6)
  assert float(jnp.abs(at_cell[:, 0] - base[:, 0]).max()) > 1e-3
  assert float(jnp.abs(at_cell[:, 1:]).max()) == 0  # empty slots stay empty


def test_bilinear_sample_matches_scipy():
  """Bilinear samples at normalised coordinates (cell centres at (i + 0.5) / W, border repeated)
  equal scipy's order-1 interpolation in pixel coordinates."""
  from scipy import ndimage
  rng = np.random.default_rng(0)
  feature = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
  x, y = rng.uniform(-0.1, 1.1, (2, 4, 6)), rng.uniform(-0.1, 1.1, (2, 4, 6))
  got = np.asarray(bilinear_sample(jnp.asarray(feature), jnp.asarray(x), jnp.asarray(y)))
  for b in range(2):
    for c in range(3):
      want = ndimage.map_coordinates(feature[b, :, :, c], [y[b] * 5 - 0.5, x[b] * 7 - 0.5], order=1, mode="nearest")
      np.testing.assert_allclose(got[b, ..., c], want, atol=1e-5)


def test_refinement_head_starts_as_identity_and_is_the_prediction():
  """refine_points > 0: one more box entry (the refined boxes, last), the same logits; a new head
  returns its input boxes, so weights trained without it load unchanged; carried tracks start
  from the refined boxes; the clip loss trains the head."""
  config, model, params, images, tracks = _setup()
  config.model.refine_points = 3
  refining = build_model(config)
  fresh = jax.jit(refining.init)(jax.random.key(1), images, tracks)
  assert set(fresh["params"]) == set(params["params"]) | {"box_refine"}
  merged = {"params": dict(params["params"], box_refine=fresh["params"]["box_refine"])}
  plain_out = model.apply(params, images, tracks)[1]
  out = refining.apply(merged, images, tracks)[1]
  mc = config.model
  assert out.boxes.shape[0] == mc.dec_layers + 1 and out.logits.shape[0] == mc.dec_layers
  np.testing.assert_allclose(np.asarray(out.boxes[:-1]), np.asarray(plain_out.boxes), atol=1e-6)
  np.testing.assert_allclose(np.asarray(out.boxes[-1]), np.asarray(plain_out.boxes[-1]), atol=1e-6)
  last = merged["params"]["box_refine"]["Dense_5"]
  moved = {"params": dict(merged["params"], box_refine=dict(merged["params"]["box_refine"], Dense_5=dict(
      last, bias=jnp.array([0.1, -0.1, 0.2, 0.0]))))}
  out = refining.apply(moved, images, tracks)[1]
  before = out.boxes[-2]
  np.testing.assert_allclose(np.asarray(out.boxes[-1]), np.asarray(jnp.concatenate(
      [before[..., :2] + jnp.array([0.1, -0.1]) * before[..., 2:], before[..., 2:] * jnp.exp(jnp.array([0.2, 0.0]))],
      -1)), atol=1e-5)
  slots = mc.num_slots
  nxt = carry_tracks(refining, moved, out, tracks, jnp.ones(2), jnp.full((2, slots), -1).at[:, 0].set(slots))
  np.testing.assert_allclose(np.asarray(nxt.ref[:, 0]), np.asarray(out.boxes[-1, :, slots]), atol=1e-6)
  batch = _one_box_batch(config, images)
  grads = jax.jit(jax.grad(lambda p: criterion.clip_loss(refining, p, batch, jax.random.key(0), config)[0]))(merged)
  assert float(jnp.abs(grads["params"]["box_refine"]["Dense_5"]["kernel"]).max()) > 0


def test_refinement_head_learns_where_the_edges_are():
  """Boxes placed off a bright square (shifted by up to a third of its size, scaled by up to 30 %)
  are pulled onto it by a head fitted on 256 such boxes, on 64 others: held-out error < half the
  input's (0.35 measured); sampling with x and y swapped or at one fixed point stays at 0.7-0.75."""
  import optax
  rng = np.random.default_rng(0)
  n, size, fit = 320, 32, slice(0, 256)
  truth = np.stack([rng.uniform(0.35, 0.65, n), rng.uniform(0.35, 0.65, n), rng.uniform(0.2, 0.35, n),
                    rng.uniform(0.2, 0.35, n)], -1)
  ys, xs = (np.mgrid[:size, :size] + 0.5) / size
  maps = np.stack([((np.abs(xs - t[0]) < t[2] / 2) & (np.abs(ys - t[1]) < t[3] / 2)) for t in truth])
  fine = jnp.asarray(maps[..., None].astype(np.float32))
  noisy = np.concatenate([truth[:, :2] + rng.uniform(-0.33, 0.33, (n, 2)) * truth[:, 2:],
                          truth[:, 2:] * rng.uniform(0.7, 1.3, (n, 2))], -1)
  boxes, target = jnp.asarray(noisy[:, None], jnp.float32), jnp.asarray(truth[:, None], jnp.float32)
  state = jnp.zeros((n, 1, 8))
  head = BoxRefine(points=7, hidden=64, channels=4)
  params = head.init(jax.random.key(0), fine, boxes, state)
  opt = optax.adam(3e-3)
  opt_state = opt.init(params)
  error = lambda p, k: jnp.abs(head.apply(p, fine[k], boxes[k], state[k]) - target[k]).mean()

  @jax.jit
  def step(p, s):
    g = jax.grad(error)(p, fit)
    updates, s = opt.update(g, s)
    return optax.apply_updates(p, updates), s

  held = slice(256, n)
  before = float(error(params, held))
  for _ in range(400):
    params, opt_state = step(params, opt_state)
  assert float(error(params, held)) < 0.5 * before


def test_deeper_backbone_warm_starts_from_a_shallower_one_unchanged():
  """Extra blocks start as the identity: a (1, 2, 2) backbone holding a trained (1, 1, 1) one's
  parameters computes the same features, and its extra blocks still get gradients."""
  from flax import traverse_util
  from mottr.checkpoint import merge_params
  from mottr.model.backbone import ResNetLite
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 64, 64, 3))
  shallow = ResNetLite((8, 16, 16, 32), (1, 1, 1))
  deep = ResNetLite((8, 16, 16, 32), (1, 2, 2))
  p_shallow = jax.jit(shallow.init)(jax.random.PRNGKey(1), x)["params"]
  p_deep, fresh = merge_params(jax.jit(deep.init)(jax.random.PRNGKey(2), x)["params"], p_shallow)
  assert fresh and all(name.startswith(("Extra_1_1/", "Extra_2_1/")) for name in fresh)
  for a, b in zip(shallow.apply({"params": p_shallow}, x), deep.apply({"params": p_deep}, x)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  grads = jax.jit(jax.grad(lambda p: deep.apply({"params": p}, x)[-1].sum()))(p_deep)
  flat = traverse_util.flatten_dict(grads)
  assert float(jnp.abs(flat[("Extra_2_1", "GroupNorm_1", "scale")]).max()) > 0


@pytest.mark.parametrize("shape, groups", [((2, 12, 10, 16), 8), ((1, 5, 7, 6), 6)])
def test_group_norm_is_flax_group_norm(shape, groups):
  """Same parameters and function as flax's nn.GroupNorm (statistics taken another way), on
  inputs with a mean far from zero, with random scale and bias."""
  import flax.linen as nn
  from mottr.model.backbone import GroupNorm
  x = jax.random.normal(jax.random.PRNGKey(0), shape) * 3.0 + 2.0
  ours, flax_norm = GroupNorm(num_groups=groups), nn.GroupNorm(num_groups=groups)
  params = ours.init(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, flax_norm.init(jax.random.PRNGKey(1), x))
  keys = jax.random.split(jax.random.PRNGKey(2), 2)
  params = {"params": {name: jax.random.normal(k, v.shape)
                       for k, (name, v) in zip(keys, sorted(params["params"].items()))}}
  np.testing.assert_allclose(ours.apply(params, x), flax_norm.apply(params, x), atol=2e-5)


@pytest.mark.parametrize("size", [(16, 12), (15, 9)])
def test_space_to_depth_stem_is_a_stride_two_conv(size):
  """The stem's 2x2 convolution over space-to-depth blocks is flax's 3x3 stride-2 SAME convolution
  with the same kernel, on even sizes; odd ones take the plain convolution."""
  import flax.linen as nn
  from mottr.model.backbone import SpaceToDepthConv
  x = jax.random.normal(jax.random.PRNGKey(0), (2, *size, 3))
  ours, conv = SpaceToDepthConv(8), nn.Conv(8, (3, 3), 2, use_bias=False)
  params = conv.init(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), conv.apply(params, x), atol=1e-5)
