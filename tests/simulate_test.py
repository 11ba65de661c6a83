"""Tests for dlg_jax.client.simulate: the client's round, defenses on its gradients, dropout masks."""

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import models
from dlg_jax.client import gradients
from dlg_jax.client import simulate
from dlg_jax.types import Private


def _victims(num_victims=2, batch=2, size=16, classes=5):
  images = jax.random.uniform(jax.random.key(0), (num_victims, batch, size, size, 3))
  labels = jax.random.randint(jax.random.key(1), (num_victims, batch), 0, classes)
  return Private(images, labels)


class ClientUpdateTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.model = models.build({'name': 'lenet', 'channels': 4}, (16, 16, 3), 5)
    self.variables = self.model.init(jax.random.key(0))
    self.victims = _victims()

  def test_no_defense_shares_the_batch_gradient(self):
    update, truth, masks = simulate.client_update(self.model, self.variables, self.victims,
                                                  jax.random.key(2), {'train': True})
    self.assertIsNone(update.known_labels)
    self.assertEqual((update.batch_size, update.input_shape, update.num_classes),
                     (2, (16, 16, 3), 5))
    for v in range(2):
      expected = gradients.batch_gradients(self.model, self.variables, truth.images[v],
                                           jax.nn.one_hot(truth.labels[v], 5))
      chex.assert_trees_all_close(jax.tree.map(lambda g: g[v], update.gradients), expected,
                                  atol=1e-6)
    self.assertIsNone(masks)

  def test_defenses_apply_and_dp_sgd_clips_per_example(self):
    clean, _, _ = simulate.client_update(self.model, self.variables, self.victims,
                                         jax.random.key(2), {'train': True})
    noisy, _, _ = simulate.client_update(
        self.model, self.variables, self.victims, jax.random.key(2),
        {'train': True, 'defenses': [{'name': 'gaussian', 'sigma': 0.1}]})
    diff = jax.tree.map(lambda a, b: a - b, noisy.gradients, clean.gradients)
    std = np.std(np.concatenate([np.ravel(d) for d in jax.tree.leaves(diff)]))
    self.assertAlmostEqual(float(std), 0.1, delta=0.01)
    clipped, _, _ = simulate.client_update(
        self.model, self.variables, self.victims, jax.random.key(2),
        {'train': True, 'defenses': [{'name': 'dp_sgd', 'clip_norm': 1e-3,
                                      'noise_multiplier': 0.0}]})
    for v in range(2):
      norm = np.sqrt(sum(float(jnp.sum(g[v] ** 2)) for g in jax.tree.leaves(clipped.gradients)))
      self.assertLessEqual(norm, 1e-3 * (1 + 1e-4))

  def test_dropout_masks_come_from_the_victims_key(self):
    model = models.build({'name': 'lenet', 'channels': 4, 'dropout_rate': 0.5}, (16, 16, 3), 5)
    a = simulate.client_update(model, self.variables, self.victims, jax.random.key(3),
                               {'train': True, 'reveal_labels': True})
    b = simulate.client_update(model, self.variables, self.victims, jax.random.key(3),
                               {'train': True})
    chex.assert_trees_all_equal(a[2], b[2])
    chex.assert_trees_all_equal(a[0].gradients, b[0].gradients)
    mask = a[2]['dropout']['mask']
    self.assertEqual(mask.shape, (2, 2, 64))  # (victims, batch, units)
    self.assertFalse(np.array_equal(mask[0], mask[1]))  # each victim its own draw
    np.testing.assert_array_equal(a[0].known_labels, self.victims.labels)


class AggregationTest(absltest.TestCase):

  def test_aggregate_of_users_is_the_sum_of_their_updates(self):
    model = models.build({'name': 'lenet', 'channels': 4}, (16, 16, 3), 5)
    variables = model.init(jax.random.key(0))
    victims = _victims(num_victims=2, batch=6)  # 3 users × 2 images each
    update, _, _ = simulate.client_update(model, variables, victims, jax.random.key(2),
                                          {'train': True, 'users': 3})
    self.assertEqual(update.batch_size, 6)
    for v in range(2):
      expected = [gradients.batch_gradients(model, variables, victims.images[v, 2 * u:2 * u + 2],
                                            jax.nn.one_hot(victims.labels[v, 2 * u:2 * u + 2], 5))
                  for u in range(3)]
      chex.assert_trees_all_close(jax.tree.map(lambda g: g[v], update.gradients),
                                  jax.tree.map(lambda *g: sum(g), *expected), atol=1e-6)

  def test_one_user_is_the_plain_round(self):
    model = models.build({'name': 'lenet', 'channels': 4}, (16, 16, 3), 5)
    variables = model.init(jax.random.key(0))
    plain, _, _ = simulate.client_update(model, variables, _victims(), jax.random.key(2),
                                         {'train': True})
    one, _, _ = simulate.client_update(model, variables, _victims(), jax.random.key(2),
                                       {'train': True, 'users': 1})
    chex.assert_trees_all_equal(plain.gradients, one.gradients)


if __name__ == '__main__':
  absltest.main()
