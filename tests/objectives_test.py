"""Tests for dlg_jax.attacks.objectives: per-layer weights of Inverting Gradients' cosine distance."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import models
from dlg_jax.attacks import inverting
from dlg_jax.attacks import losses
from dlg_jax.attacks import objectives
from dlg_jax.attacks import registry
from dlg_jax.client import gradients
from dlg_jax.client import protocol
from dlg_jax.models import order

SIZE, CLASSES = 16, 4


def _random_tree(key):
  k1, k2, k3 = jax.random.split(key, 3)
  return {'conv': {'kernel': jax.random.normal(k1, (3, 3, 2, 4)), 'bias': jax.random.normal(k2, (4,))},
          'fc': {'kernel': jax.random.normal(k3, (8, 4))}}


def _lenet_setup():
  model = models.build({'name': 'lenet', 'channels': 4}, (SIZE, SIZE, 3), CLASSES)
  variables = jax.jit(model.init)(jax.random.key(0))
  image = jax.random.uniform(jax.random.key(1), (1, SIZE, SIZE, 3))
  labels = jnp.array([2])
  target = jax.jit(lambda x: gradients.batch_gradients(
      model, variables, x, jax.nn.one_hot(labels, CLASSES)))(image)
  return model, variables, image, labels, target


class WeightedCosineTest(absltest.TestCase):

  def test_unit_weights_equal_the_plain_cosine(self):
    a, b = _random_tree(jax.random.key(0)), _random_tree(jax.random.key(1))
    n = len(jax.tree.leaves(a))
    plain = objectives.cosine_distance(a, b)
    self.assertAlmostEqual(float(objectives.cosine_distance(a, b, (1.0,) * n)), float(plain),
                           places=6)
    self.assertAlmostEqual(float(objectives.cosine_distance(a, b, objectives.layer_weights('', n))),
                           float(plain), places=6)

  def test_weights_change_the_value(self):
    a, b = _random_tree(jax.random.key(0)), _random_tree(jax.random.key(1))
    n = len(jax.tree.leaves(a))
    plain = float(objectives.cosine_distance(a, b))
    for scheme in ('linear', 'exp'):
      weighted = float(objectives.cosine_distance(a, b, objectives.layer_weights(scheme, n)))
      self.assertGreater(abs(weighted - plain), 1e-3, scheme)
    # A single leaf with all the weight is that leaf's own cosine.
    only = float(objectives.cosine_distance(a, b, (0.0, 0.0, 1.0)))
    x, y = jax.tree.leaves(a)[2].ravel(), jax.tree.leaves(b)[2].ravel()
    self.assertAlmostEqual(only, float(1 - x @ y / jnp.linalg.norm(x) / jnp.linalg.norm(y)),
                           places=5)

  def test_schemes_match_geiping(self):
    np.testing.assert_allclose(objectives.layer_weights('linear', 4), (1.0, 0.75, 0.5, 0.25))
    # 'exp': softmax(n, ..., 1) / its first entry = exp(-i).
    n = 5
    soft = np.exp(np.arange(n, 0, -1) - n)
    np.testing.assert_allclose(objectives.layer_weights('exp', n), soft / soft[0], rtol=1e-6)

  def test_bad_weights_name_the_field(self):
    with self.assertRaisesRegex(ValueError, 'attack.layer_weights must be one of'):
      objectives.layer_weights('quadratic', 3)
    with self.assertRaisesRegex(ValueError, 'has 2 entries but the model has 3'):
      objectives.layer_weights((1.0, 2.0), 3)
    with self.assertRaisesRegex(ValueError, '>= 0 with one > 0'):
      objectives.layer_weights((1.0, -1.0, 0.0), 3)
    with self.assertRaisesRegex(ValueError, 'attack.layer_weights'):
      registry.complete({'name': 'ig', 'layer_weights': 'first'})


class UseOrderTest(absltest.TestCase):

  def test_resnet_layers_are_ordered_input_to_output(self):
    # A pytree sorts a ResNet's 'fc' before 'stem_conv'; the use order must not.
    model = models.build({'name': 'resnet18', 'width': 2, 'stage_sizes': (1, 1), 'act': 'sigmoid'},
                         (8, 8, 3), CLASSES)
    variables = model.init(jax.random.key(0))
    x = jnp.zeros((1, 8, 8, 3))
    ranks = order.use_order(
        lambda p: model.apply({**variables, 'params': p}, x, train=True), variables['params'])
    paths = [jax.tree_util.keystr(k)
             for k, _ in jax.tree_util.tree_flatten_with_path(variables['params'])[0]]
    by_rank = [p for _, p in sorted(zip(ranks, paths))]
    self.assertEqual(sorted(ranks), list(range(len(paths))))
    self.assertEqual(by_rank[0], "['stem_conv']['kernel']")
    self.assertEqual(by_rank[-2:], ["['fc']['kernel']", "['fc']['bias']"])

  def test_weighted_loss_is_zero_at_the_truth_and_weights_matter(self):
    model, variables, image, labels, target = _lenet_setup()
    weights = inverting.cosine_weights({'layer_weights': 'linear'}, model, variables, True)
    self.assertLen(weights, 8)  # 3 convs + 1 dense, kernel and bias each
    self.assertEqual(max(weights), 1.0)
    # Both weightings in one compiled program (eager second-order grads are slow).
    loss = jax.jit(lambda z: jnp.stack([
        losses.matching_loss(z, {'target': target, 'labels': labels}, model=model,
                             variables=variables, train=True, protocol=protocol.FEDSGD,
                             distance='cosine', layer_weights=w)
        for w in (weights, None)]))
    at_truth, plain_at_truth = loss({'image': image})
    self.assertLess(abs(float(at_truth)), 1e-5)
    self.assertLess(abs(float(plain_at_truth)), 1e-5)
    weighted, plain = loss({'image': jnp.flip(image, axis=1)})
    self.assertGreater(abs(float(weighted) - float(plain)), 1e-4)
    self.assertIsNone(inverting.cosine_weights({'layer_weights': ''}, model, variables, True))


if __name__ == '__main__':
  absltest.main()
