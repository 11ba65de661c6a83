"""Normalisation as the model's first layer: round trip, equivalence, config errors."""

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import models
from dlg_jax import preprocess


class NormalizationTest(absltest.TestCase):

  def test_round_trip_and_known_values(self):
    n = preprocess.from_config({'normalize': 'cifar10'}, 3)
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    np.testing.assert_allclose(n.to_pixels(n.to_model(x)), x, atol=1e-6)
    np.testing.assert_allclose(n.to_model(jnp.zeros((1, 1, 1, 3)))[0, 0, 0],
                               -np.array([0.4914, 0.4822, 0.4465]) / [0.2470, 0.2435, 0.2616],
                               rtol=1e-5)

  def test_grey_stats_repeat_over_rgb_and_errors(self):
    n = preprocess.from_config({'normalize': 'fashion_mnist'}, 3)
    self.assertEqual(n.mean, (0.286,) * 3)
    self.assertIsNone(preprocess.from_config({'normalize': ''}, 3))
    custom = preprocess.from_config({'normalize': 'custom', 'mean': (0.5,), 'std': (0.5,)}, 1)
    self.assertEqual(custom, preprocess.Normalization((0.5,), (0.5,)))
    with self.assertRaisesRegex(ValueError, 'data.normalize must be'):
      preprocess.from_config({'normalize': 'cifar11'}, 3)
    with self.assertRaisesRegex(ValueError, 'one per channel'):
      preprocess.from_config({'normalize': 'imagenet2012'}, 1)
    with self.assertRaisesRegex(ValueError, 'positive'):
      preprocess.from_config({'normalize': 'custom', 'mean': (0.0,), 'std': (0.0,)}, 1)

  def test_normalized_model_takes_pixels(self):
    model = models.build({'name': 'lenet'}, input_shape=(28, 28, 1), num_classes=10)
    n = preprocess.from_config({'normalize': 'mnist'}, 1)
    wrapped = preprocess.normalized(model, n)
    variables = model.init(jax.random.key(0))
    self.assertEqual(jax.tree.structure(wrapped.init(jax.random.key(0))),
                     jax.tree.structure(variables))  # same parameters: trained weights load
    x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
    np.testing.assert_allclose(wrapped.apply(variables, x), model.apply(variables, n.to_model(x)),
                               rtol=1e-6)
    self.assertIs(preprocess.normalized(model, None), model)

  def test_normalized_model_keeps_statistics_of_the_normalised_input(self):
    # A training step (mutable=True) sees the normalised input too.
    model = models.build({'name': 'resnet18', 'width': 4}, input_shape=(8, 8, 1), num_classes=10)
    n = preprocess.Normalization((0.5,), (0.05,))
    wrapped = preprocess.normalized(model, n)
    variables = model.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1))
    got = jax.jit(lambda v, xx: wrapped.apply(v, xx, train=True, mutable=True))(variables, x)
    want = jax.jit(lambda v, xx: model.apply(v, n.to_model(xx), train=True, mutable=True))(
        variables, x)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    self.assertEqual(set(got[1]), {'batch_stats'})


if __name__ == '__main__':
  absltest.main()
