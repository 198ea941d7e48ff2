"""Loss terms on hand-made cases."""
import jax.numpy as jnp
import numpy as np

from mottr import boxes as box_lib
from mottr import losses


def test_focal_matches_formula():
  logits = jnp.array([[2.0, -1.0]])
  targets = jnp.array([[1.0, 0.0]])
  p = 1 / (1 + np.exp(-np.array([2.0, -1.0])))
  expected = 0.25 * (1 - p[0])**2 * -np.log(p[0]) + 0.75 * p[1]**2 * -np.log(1 - p[1])
  np.testing.assert_allclose(float(losses.sigmoid_focal_loss(logits, targets)), expected, rtol=1e-5)


def test_focal_weight_masks_rows_and_confident_right_is_small():
  logits = jnp.array([[8.0, -8.0], [-8.0, 8.0]])
  targets = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  both = float(losses.sigmoid_focal_loss(logits, targets))
  first = float(losses.sigmoid_focal_loss(logits, targets, weight=jnp.array([1.0, 0.0])))
  assert first < 1e-6 < both


def test_box_losses_identical_zero_and_known_value():
  a = jnp.array([[0.5, 0.5, 0.2, 0.2]])
  l1, giou = losses.box_losses(a, a, jnp.ones(1))
  assert float(l1) == 0 and abs(float(giou)) < 1e-5
  b = jnp.array([[0.6, 0.5, 0.2, 0.2]])  # shifted by half a width: IoU = 1/3, hull = union
  l1, giou = losses.box_losses(a, b, jnp.ones(1))
  np.testing.assert_allclose(float(l1), 0.1, rtol=1e-5)
  np.testing.assert_allclose(float(giou), 1 - 1 / 3, rtol=1e-4)


def test_box_losses_ignore_padding():
  a = jnp.array([[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]])
  t = jnp.array([[0.5, 0.5, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]])
  l1, giou = losses.box_losses(a, t, jnp.array([1.0, 0.0]))
  assert float(l1) == 0 and abs(float(giou)) < 1e-5


def test_giou_disjoint_is_negative():
  a = box_lib.cxcywh_to_xyxy(jnp.array([0.2, 0.2, 0.1, 0.1]))
  b = box_lib.cxcywh_to_xyxy(jnp.array([0.8, 0.8, 0.1, 0.1]))
  assert float(box_lib.elementwise_giou(a, b)) < -0.5
