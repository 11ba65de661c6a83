"""Tests for `models.matmul`: a dense layer's matmul and its derivatives.

They must equal `x @ k` and JAX's own derivatives of it to the third order
(float64), under `vmap`, and inside `nn.Dense` (same parameters, names and
outputs as flax's own).
"""

from __future__ import annotations

from absl.testing import absltest
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.models import layers
from dlg_jax.models import matmul


def _derivatives(mm, x, k, c):
  loss = lambda x, k: jnp.sum(jnp.tanh(mm(x, k)) * c)
  first = jax.grad(loss, (0, 1))(x, k)
  x_of_k = jax.grad(lambda x: jnp.sum(jnp.cos(jax.grad(loss, 1)(x, k))))(x)
  k_of_x = jax.grad(lambda k: jnp.sum(jax.grad(loss, 0)(x, k) ** 2))(k)
  third = jax.grad(lambda k: jnp.sum(jax.grad(
      lambda x: jnp.sum(jnp.cos(jax.grad(loss, 1)(x, k))))(x) ** 2))(k)
  return first, x_of_k, k_of_x, third


class MatmulTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    jax.config.update('jax_enable_x64', True)
    self.addCleanup(jax.config.update, 'jax_enable_x64', False)
    rng = np.random.default_rng(0)
    self.x = jnp.asarray(rng.normal(size=(3, 5)))
    self.k = jnp.asarray(rng.normal(size=(5, 4)))
    self.c = jnp.asarray(rng.normal(size=(3, 4)))

  def test_derivatives_equal_jax_to_the_third_order(self):
    chex.assert_trees_all_close(_derivatives(matmul.matmul, self.x, self.k, self.c),
                                _derivatives(jnp.matmul, self.x, self.k, self.c),
                                rtol=1e-12, atol=1e-12)

  def test_vmap_per_victim_inputs_and_kernels(self):
    xs = jnp.stack([self.x, 2 * self.x])
    ks = jnp.stack([self.k, -self.k])
    for in_axes in ((0, None), (0, 0)):
      run = lambda mm: jax.vmap(lambda x, k: _derivatives(mm, x, k, self.c), in_axes)(
          xs, ks if in_axes[1] == 0 else self.k)
      chex.assert_trees_all_close(run(matmul.matmul), run(jnp.matmul), rtol=1e-12, atol=1e-12)

  def test_dense_is_flax_dense_with_this_matmul(self):
    x = jnp.ones((2, 7, 5))  # a token axis, as the ViT's
    ours, theirs = layers.dense(4, name='head'), nn.Dense(4, name='head')
    variables = theirs.init(jax.random.key(0), x)
    chex.assert_trees_all_equal_shapes(ours.init(jax.random.key(0), x), variables)
    chex.assert_trees_all_close(ours.apply(variables, x), theirs.apply(variables, x),
                                rtol=1e-12, atol=1e-12)
    grad = lambda m: jax.grad(lambda x: jnp.sum(jax.grad(
        lambda v: jnp.sum(m.apply(v, x) ** 2))(variables)['params']['kernel'] ** 2))(x)
    chex.assert_trees_all_close(grad(ours), grad(theirs), rtol=1e-12, atol=1e-12)

  def test_other_contractions_are_refused_by_name(self):
    with self.assertRaisesRegex(ValueError, 'dense layer'):
      matmul.dot_general(self.x, self.k.T, (((1,), (1,)), ((), ())))


if __name__ == '__main__':
  absltest.main()
