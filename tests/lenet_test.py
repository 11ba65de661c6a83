"""The DLG LeNet, its im2col convolution and the client's gradients."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
from jax import flatten_util
import jax.numpy as jnp
import numpy as np

from dlg_jax import models
from dlg_jax.client import gradients
from dlg_jax.models import layers


class Im2ColTest(parameterized.TestCase):

  @parameterized.parameters((32, 5, 2, 2), (16, 5, 2, 2), (8, 5, 1, 2), (7, 3, 2, 1), (12, 5, 1, 0))
  def test_col2im_is_the_transpose_of_im2col(self, size, k, stride, pad):
    padding = ((pad, pad), (pad, pad))
    x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
    cols = layers.im2col(x, (k, k), stride, padding)
    ct = jax.random.normal(jax.random.key(1), cols.shape)
    # <im2col(x), ct> == <x, col2im(ct)> for every x, ct.
    lhs = jnp.sum(cols * ct)
    rhs = jnp.sum(x * layers.col2im(ct, (k, k), stride, padding, (size, size)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)
    grad = jax.grad(lambda x: jnp.sum(layers.im2col(x, (k, k), stride, padding) * ct))(x)
    np.testing.assert_allclose(grad, layers.col2im(ct, (k, k), stride, padding, (size, size)),
                               atol=1e-5)

  def test_im2col_conv_equals_xla_conv_and_its_second_derivative(self):
    fast = models.build({'name': 'lenet'}, (32, 32, 3), 10)
    ref = models.build({'name': 'lenet', 'conv_impl': 'xla'}, (32, 32, 3), 10)
    variables = fast.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
    chex.assert_trees_all_close(fast.apply(variables, x), ref.apply(variables, x), atol=1e-5)
    y = jax.nn.one_hot(jnp.array([1, 3]), 10)

    def matching(model):
      target = gradients.batch_gradients(model, variables, x, y)
      return jax.grad(lambda z: sum(jnp.sum(g ** 2) for g in jax.tree.leaves(
          jax.tree.map(jnp.subtract, gradients.batch_gradients(model, variables, z, y), target))))(
              x + 0.1)

    chex.assert_trees_all_close(matching(fast), matching(ref), atol=1e-4, rtol=1e-3)


class LeNetTest(absltest.TestCase):

  def test_shapes_and_init_range(self):
    for size, flat in ((32, 768), (28, 588)):
      model = models.build({'name': 'lenet'}, (size, size, 3), 100)
      params = model.init(jax.random.key(0))['params']
      self.assertEqual(params['Dense_0']['kernel'].shape, (flat, 100))
      for leaf in jax.tree.leaves(params):
        self.assertLessEqual(float(jnp.max(jnp.abs(leaf))), 0.5)
      self.assertEqual(model.apply(model.init(jax.random.key(0)), jnp.zeros((2, size, size, 3))).shape,
                       (2, 100))

  def test_gradients_match_finite_differences(self):
    jax.config.update('jax_enable_x64', True)
    try:
      model = models.build({'name': 'lenet', 'channels': 4}, (12, 12, 1), 5)
      variables = jax.tree.map(lambda x: x.astype(jnp.float64), model.init(jax.random.key(0)))
      x = jax.random.uniform(jax.random.key(1), (1, 12, 12, 1), jnp.float64)
      y = jax.nn.one_hot(jnp.array([2]), 5, dtype=jnp.float64)
      params, state = gradients.split_variables(variables)
      grads = gradients.batch_gradients(model, variables, x, y)
      flat, unravel = flatten_util.ravel_pytree(params)
      g_flat, _ = flatten_util.ravel_pytree(grads)
      # Jitted: eagerly, every im2col slice of every evaluation compiles on its own.
      loss = jax.jit(lambda f: gradients.training_loss(unravel(f), model, state, x, y))
      rng = np.random.default_rng(0)
      for i in rng.choice(flat.size, 12, replace=False):
        e = jnp.zeros_like(flat).at[i].set(1e-6)
        fd = (loss(flat + e) - loss(flat - e)) / 2e-6
        np.testing.assert_allclose(g_flat[i], fd, rtol=1e-5, atol=1e-9)
    finally:
      jax.config.update('jax_enable_x64', False)

  def test_per_example_gradients_equal_a_loop(self):
    model = models.build({'name': 'lenet', 'channels': 4}, (16, 16, 3), 7)
    variables = model.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, 16, 16, 3))
    y = jax.nn.one_hot(jnp.array([0, 4, 6]), 7)
    per_example = jax.jit(lambda x, y: gradients.per_example_gradients(model, variables, x, y))
    batch = jax.jit(lambda x, y: gradients.batch_gradients(model, variables, x, y))
    per_example = per_example(x, y)
    for i in range(3):
      chex.assert_trees_all_close(jax.tree.map(lambda g: g[i], per_example),
                                  batch(x[i:i + 1], y[i:i + 1]), atol=1e-6)
    chex.assert_trees_all_close(jax.tree.map(lambda g: g.mean(0), per_example),
                                batch(x, y), atol=1e-6)


class MaskedDropoutTest(absltest.TestCase):

  def test_all_ones_mask_at_rate_zero_is_the_deterministic_model(self):
    model = models.build({'name': 'lenet', 'dropout_rate': 0.0}, (32, 32, 3), 10)
    with_site = models.build({'name': 'lenet', 'dropout_rate': 0.5}, (32, 32, 3), 10)
    variables = model.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
    template = with_site.mask_template(variables, 2)
    self.assertEqual(jax.tree.map(jnp.shape, template), {'dropout': {'mask': (2, 768)}})
    scaled = jax.tree.map(lambda m: m * 0.5, template)  # keep-all mask times (1 - p)
    chex.assert_trees_all_close(with_site.apply(variables, x, masks=scaled),
                                model.apply(variables, x), atol=1e-5)
    chex.assert_trees_all_close(with_site.apply(variables, x), model.apply(variables, x))

  def test_client_masks_are_reproducible_from_the_key(self):
    model = models.build({'name': 'lenet', 'dropout_rate': 0.25}, (32, 32, 3), 10)
    template = model.mask_template(model.init(jax.random.key(0)), 4)
    a = layers.sample_masks(jax.random.key(3), template, 0.25)
    b = layers.sample_masks(jax.random.key(3), template, 0.25)
    c = layers.sample_masks(jax.random.key(4), template, 0.25)
    chex.assert_trees_all_equal(a, b)
    self.assertFalse(np.array_equal(a['dropout']['mask'], c['dropout']['mask']))
    self.assertAlmostEqual(float(jnp.mean(a['dropout']['mask'])), 0.75, delta=0.03)

  def test_bad_rate_is_a_clear_error(self):
    with self.assertRaisesRegex(ValueError, r'\[0, 1\)'):
      models.build({'name': 'lenet', 'dropout_rate': 1.0}, (32, 32, 3), 10)


if __name__ == '__main__':
  absltest.main()
