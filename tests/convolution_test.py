"""Tests for `models.convolution`: XLA's conv, its derivatives, and their layout.

The three maps must equal `lax.conv_general_dilated` and JAX's own
derivatives of it to every order gradient matching takes (float64), under
`vmap` too; and a compiled loop of IG-style double backward steps must hold
only convolutions in XLA:CPU's fast layout (the reason the module exists).
"""

from __future__ import annotations

import itertools
import re

from absl.testing import absltest
from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.models import convolution

_NHWC = ('NHWC', 'HWIO', 'NHWC')
_PADS = {'same': None, 'valid': ((0, 0), (0, 0)), 'asymmetric': ((1, 2), (0, 1))}


def _lax(strides, pad):
  return lambda x, k: jax.lax.conv_general_dilated(x, k, strides, pad, dimension_numbers=_NHWC)


def _ours(strides, pad):
  return lambda x, k: convolution.conv(x, k, strides, pad)


def _derivatives(conv, x, k, c):
  """First order in (x, k), the two second orders IG and DLG take, and a third."""
  loss = lambda x, k: jnp.sum(jnp.sin(conv(x, k)) * c)
  first = jax.grad(loss, (0, 1))(x, k)
  # ∇x of a function of ∇k (gradient matching), and ∇k of a function of ∇x.
  x_of_k = jax.grad(lambda x: jnp.sum(jax.grad(loss, 1)(x, k) ** 2))(x)
  k_of_x = jax.grad(lambda k: jnp.sum(jax.grad(loss, 0)(x, k) ** 2))(k)
  third = jax.grad(lambda x: jnp.sum(jax.grad(
      lambda x: jnp.sum(jax.grad(loss, 1)(x, k) ** 2))(x) ** 2))(x)
  return first, x_of_k, k_of_x, third


class ConvolutionTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    jax.config.update('jax_enable_x64', True)
    self.addCleanup(jax.config.update, 'jax_enable_x64', False)

  @parameterized.parameters(itertools.product((1, 3, 5), (1, 2), tuple(_PADS)))
  def test_derivatives_equal_lax(self, k, stride, pad_name):
    size = 7 if (k + stride) % 2 else 8  # odd and even sizes under both strides
    pad = _PADS[pad_name] or ((k // 2, k // 2),) * 2
    rng = np.random.default_rng(k + stride + size)
    x = jnp.asarray(rng.normal(size=(2, size, size, 3)))
    kernel = jnp.asarray(rng.normal(size=(k, k, 3, 4)))
    strides = (stride, stride)
    want = _lax(strides, pad)(x, kernel)
    c = jnp.asarray(rng.normal(size=want.shape))
    chex.assert_trees_all_close(_ours(strides, pad)(x, kernel), want, rtol=1e-12, atol=1e-12)
    chex.assert_trees_all_close(_derivatives(_ours(strides, pad), x, kernel, c),
                                _derivatives(_lax(strides, pad), x, kernel, c),
                                rtol=1e-10, atol=1e-10)

  @parameterized.parameters(1, 2)
  def test_vmap_over_victims_equals_lax(self, stride):
    # A block of victims: per-victim images (and, in `per_example`, kernels).
    rng = np.random.default_rng(stride)
    x = jnp.asarray(rng.normal(size=(3, 2, 8, 8, 3)))
    kernels = jnp.asarray(rng.normal(size=(3, 3, 3, 3, 4)))
    target = jnp.asarray(rng.normal(size=(3, 3, 3, 4)))
    pad = ((1, 1), (1, 1))

    def matching(conv):  # ∇x of the cosine of the kernel gradient, per victim
      def one(xv):
        gk = jax.grad(lambda k: jnp.sum(jnp.tanh(conv(xv, k))))(kernels[0])
        return jnp.sum(gk * target) / jnp.linalg.norm(gk)
      return jax.vmap(jax.grad(one))(x)

    def per_example(conv):  # both operands batched, both gradients
      return jax.vmap(jax.grad(lambda xv, kv: jnp.sum(jnp.sin(conv(xv, kv)) ** 2), (0, 1)))(
          x, kernels)

    for f in (matching, per_example):
      chex.assert_trees_all_close(f(_ours((stride, stride), pad)), f(_lax((stride, stride), pad)),
                                  rtol=1e-10, atol=1e-10)

  @parameterized.parameters(1, 3)
  def test_a_loop_of_matching_steps_holds_only_fast_layout_convolutions(self, victims):
    # XLA:CPU rewrites convolutions into NHWC × HWIO → NHWC (the layout its fast
    # kernels take) only outside loops; every attack step runs inside one.
    pad = ((1, 1), (1, 1))
    kernel = jnp.ones((3, 3, 4, 4))

    def step(x):
      def loss(x):
        h = jnp.tanh(convolution.conv(x, kernel, (1, 1), pad))
        y = convolution.conv(h, kernel, (2, 2), pad)
        return jnp.sum(jax.grad(lambda k: jnp.sum(jnp.tanh(convolution.conv(h, k, (2, 2), pad))
                                                  * y))(kernel) ** 2)
      return x - 0.1 * jax.grad(loss)(x)

    run = jax.jit(lambda xs: jax.lax.fori_loop(0, 2, lambda i, xs: jax.vmap(step)(xs), xs))
    hlo = run.lower(jnp.ones((victims, 1, 8, 8, 4))).compile().as_text()
    convs = [line for line in hlo.splitlines() if re.search(r'\bconvolution\(', line)]
    self.assertNotEmpty(convs)
    for line in convs:
      self.assertIn('dim_labels=b01f_01io->b01f', line)
      self.assertNotIn('feature_group_count', line)
      self.assertNotIn('batch_group_count', line)


class DepthwiseTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    jax.config.update('jax_enable_x64', True)
    self.addCleanup(jax.config.update, 'jax_enable_x64', False)

  @parameterized.parameters(itertools.product((1, 2), ('valid', 'asymmetric', 'one')))
  def test_derivatives_equal_lax_grouped_conv(self, stride, pad_name):
    pad = {'valid': ((0, 0), (0, 0)), 'asymmetric': ((1, 2), (0, 1)),
           'one': ((1, 1), (1, 1))}[pad_name]
    rng = np.random.default_rng(stride)
    x = jnp.asarray(rng.normal(size=(2, 7, 8, 5)))
    kernel = jnp.asarray(rng.normal(size=(3, 3, 1, 5)))
    c = jnp.asarray(rng.normal(size=jax.eval_shape(
        lambda: convolution.depthwise(x, kernel, (stride,) * 2, pad)).shape))
    grouped = lambda x, k: jax.lax.conv_general_dilated(
        x, k, (stride,) * 2, pad, dimension_numbers=_NHWC, feature_group_count=5)
    ours = lambda x, k: convolution.depthwise(x, k, (stride,) * 2, pad)
    chex.assert_trees_all_close(_derivatives(ours, x, kernel, c),
                                _derivatives(grouped, x, kernel, c), rtol=1e-10, atol=1e-10)

  def test_flax_conv_keeps_its_parameters_and_routes_only_depthwise(self):
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
    for groups, features in ((4, 4), (1, 8), (2, 4)):
      make = lambda fn: nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)),
                                feature_group_count=groups, conv_general_dilated=fn)
      variables = make(jax.lax.conv_general_dilated).init(jax.random.key(1), x)
      ours = make(convolution.conv_general_dilated)
      chex.assert_trees_all_equal_shapes(ours.init(jax.random.key(1), x), variables)
      chex.assert_trees_all_close(ours.apply(variables, x),
                                  make(jax.lax.conv_general_dilated).apply(variables, x),
                                  rtol=1e-10, atol=1e-10)

  def test_a_loop_of_matching_steps_holds_no_grouped_convolution(self):
    kernel = jnp.ones((3, 3, 1, 4))

    def step(x):
      def loss(x):
        y = jnp.tanh(convolution.depthwise(x, kernel, (2, 2), ((1, 1), (1, 1))))
        return jnp.sum(jax.grad(lambda k: jnp.sum(
            convolution.depthwise(x, k, (2, 2), ((1, 1), (1, 1))) * y))(kernel) ** 2)
      return x - 0.1 * jax.grad(loss)(x)

    run = jax.jit(lambda xs: jax.lax.fori_loop(0, 2, lambda i, xs: jax.vmap(step)(xs), xs))
    hlo = run.lower(jnp.ones((3, 1, 8, 8, 4))).compile().as_text()
    self.assertNotIn('feature_group_count', hlo)
    self.assertNotRegex(hlo, r'\bconvolution\(')


if __name__ == '__main__':
  absltest.main()
