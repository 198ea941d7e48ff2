"""Hungarian matching (both solvers) vs scipy on random costs (with padded ground truth), and TAL on a
crafted clip."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from mottr import matching


@pytest.mark.parametrize("solver", matching.SOLVERS)
@pytest.mark.parametrize("seed", range(6))
def test_hungarian_matches_scipy_with_padding(seed, solver):
  rng = np.random.default_rng(seed)
  n, m = 10, 6
  cost = rng.normal(size=(n, m)).astype(np.float32)
  cost[rng.uniform(size=(n, m)) < 0.1] = np.inf  # e.g. a degenerate box's cost
  valid = rng.uniform(size=m) < 0.7
  valid[0] = True
  match = jax.jit(lambda c, v: matching.hungarian_match(c, v, solver))
  pred_index, matched = match(jnp.asarray(cost), jnp.asarray(valid))
  cost = np.where(np.isfinite(cost), cost, 1e6)
  rows, cols = linear_sum_assignment(cost[:, valid])
  ours = np.asarray(pred_index)[valid]
  assert len(set(np.asarray(pred_index).tolist())) == m  # one-to-one over every column
  np.testing.assert_allclose(cost[ours, np.flatnonzero(valid)].sum(), cost[:, valid][rows, cols].sum(), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(matched), valid)


def test_match_cost_prefers_right_box_and_class():
  logits = jnp.array([[4.0, -4.0], [-4.0, 4.0]])
  boxes = jnp.array([[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.1, 0.1]])
  gt_boxes = jnp.array([[0.7, 0.7, 0.1, 0.1], [0.2, 0.2, 0.1, 0.1]])
  cost = matching.match_cost(logits, boxes, jnp.array([1, 0]), gt_boxes)
  pred_index, _ = matching.hungarian_match(cost, jnp.array([True, True]))
  np.testing.assert_array_equal(np.asarray(pred_index), [1, 0])


def _frame(present):
  """GT of a frame: object 0 at top-left, object 1 at bottom-right, object 2 centre; `present` masks."""
  boxes = jnp.array([[0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1]])
  return boxes, jnp.array([0, 1, 0]), jnp.array(present)


def test_tracklet_aware_assignment_three_frames():
  s, q = 2, 4
  det_boxes = jnp.array([[0.5, 0.5, 0.1, 0.1], [0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1], [0.4, 0.1, 0.1, 0.1]])
  boxes = jnp.concatenate([jnp.full((s, 4), 0.5), det_boxes])
  logits = jnp.zeros((s + q, 2))
  # Frame 1: nothing tracked; objects 0 and 1 visible -> matched to the detect queries on them.
  target = matching.tracklet_aware_assignment(logits, boxes, jnp.array([-1, -1]), jnp.array([False, False]),
                                              *_frame([True, True, False]))
  np.testing.assert_array_equal(np.asarray(target), [-1, -1, -1, 0, 1, -1])
  # Frame 2: slot 0 tracks object 0, slot 1 object 1; object 1 is absent -> slot 1 is background;
  # a detect query sits on object 0 too but must not take it; new object 2 goes to a detect query.
  target = matching.tracklet_aware_assignment(logits, boxes, jnp.array([0, 1]), jnp.array([True, True]),
                                              *_frame([True, False, True]))
  np.testing.assert_array_equal(np.asarray(target), [0, -1, 2, -1, -1, -1])
  # Frame 3: an inserted false positive (object -1) is background; object 0 keeps its slot.
  target = matching.tracklet_aware_assignment(logits, boxes, jnp.array([-1, 0]), jnp.array([True, True]),
                                              *_frame([True, False, False]))
  np.testing.assert_array_equal(np.asarray(target), [-1, 0, -1, -1, -1, -1])


def test_unknown_solver_is_refused():
  with pytest.raises(ValueError, match="unknown matcher"):
    matching.hungarian_match(jnp.zeros((3, 2)), jnp.ones(2, bool), "greedy")


@pytest.mark.parametrize("solver", matching.SOLVERS)
def test_hungarian_batched_under_vmap_and_grad_matches_scipy(solver):
  rng = np.random.default_rng(7)
  cost = rng.normal(size=(2, 3, 9, 5)).astype(np.float32)  # two vmapped batch axes
  valid = np.ones(5, bool)
  one = lambda c, v: matching.hungarian_match(c, v, solver)
  match = jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(0, None))
  pred_index, _ = jax.jit(match)(jnp.asarray(cost), jnp.asarray(valid))
  for i in range(2):
    for j in range(3):
      rows, cols = linear_sum_assignment(cost[i, j])
      np.testing.assert_array_equal(np.asarray(pred_index[i, j])[cols], rows)
  # Differentiating through a loss that indexes with the matching: gradients flow to the cost only.
  loss = lambda c: jnp.take_along_axis(c, one(c, jnp.asarray(valid))[0][None], 0).sum()
  grad = jax.jit(jax.grad(loss))(jnp.asarray(cost[0, 0]))
  assert float(grad.sum()) == 5.0
