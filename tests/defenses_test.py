"""Tests for dlg_jax.client.defenses: each transform's defining property."""

import functools
import math

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.client import defenses

_SAVED_OPTIMIZATIONS_FLAG = None


def setUpModule():
  # Tiny pytrees: compile time dominates, so skip XLA's optimiser here only.
  global _SAVED_OPTIMIZATIONS_FLAG
  _SAVED_OPTIMIZATIONS_FLAG = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)


def tearDownModule():
  jax.config.update('jax_disable_most_optimizations', _SAVED_OPTIMIZATIONS_FLAG)


def _tree(seed, scale=1.0, batch=None):
  """A small Flax-params-shaped pytree, optionally with a leading batch axis.

  Drawn with numpy: test data needs no compiles.
  """
  rng = np.random.default_rng(seed)
  lead = () if batch is None else (batch,)
  draw = lambda *s: jnp.asarray(scale * rng.standard_normal(lead + s),
                                jnp.float32)
  return {'Conv_0': {'kernel': draw(3, 3, 1, 4), 'bias': draw(4)},
          'Dense_0': {'kernel': draw(16, 10), 'bias': draw(10)}}


def _small(seed, batch=None):
  """Two leaves: enough for tree handling, cheap to compile (and run eagerly)."""
  rng = np.random.default_rng(seed)
  lead = () if batch is None else (batch,)
  draw = lambda *s: jnp.asarray(rng.standard_normal(lead + s), jnp.float32)
  return {'kernel': draw(4, 3), 'bias': draw(3)}


def _agg(d, batch_size=None):
  """The jitted aggregate stage: one compile per test instead of per op."""
  return jax.jit(functools.partial(d.aggregate, batch_size=batch_size))


def _np(tree):
  return jax.tree.map(np.asarray, tree)


def _flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(_np(tree))])


def _global_norms(tree):
  """Per-example global L2 norms (numpy), leaves with a leading batch axis."""
  leaves = jax.tree.leaves(_np(tree))
  b = leaves[0].shape[0]
  return np.sqrt(sum(np.sum(np.square(x.reshape(b, -1), dtype=np.float64),
                            axis=1) for x in leaves))


def _zeros(*shape, dtype=np.float32):
  return jnp.asarray(np.zeros(shape, dtype))


def _big_zeros(n=200_000):
  # Two leaves, so per-leaf keys are exercised too.
  return {'a': _zeros(n // 2), 'b': _zeros(n // 4, 2)}


# Named so that parameterized test names are readable.
_RANDOM = dict(
    gaussian=lambda: defenses.gaussian_noise(0.1),
    laplacian=lambda: defenses.laplacian_noise(0.1),
    dp_sgd=lambda: defenses.dp_sgd(clip_norm=1.0, noise_multiplier=1.0),
    chain=lambda: defenses.chain(defenses.prune(0.3),
                                 defenses.gaussian_noise(0.1)),
)
_ALL = dict(
    _RANDOM,
    identity=defenses.identity,
    fp16=lambda: defenses.quantize('fp16'),
    bf16=lambda: defenses.quantize('bf16'),
    int8=lambda: defenses.quantize('int8'),
    prune=lambda: defenses.prune(0.5),
)


class NoiseTest(parameterized.TestCase):

  def test_gaussian_std_is_sigma(self):
    sigma = 0.03
    out = _flat(_agg(defenses.gaussian_noise(sigma))(
        _big_zeros(), jax.random.key(0)))
    n = out.size
    # The sample std has relative standard error ~ 1/sqrt(2n); allow 5 of them.
    self.assertAlmostEqual(out.std() / sigma, 1.0, delta=5 / math.sqrt(2 * n))
    self.assertAlmostEqual(out.mean(), 0.0, delta=5 * sigma / math.sqrt(n))

  def test_variance_is_sigma_squared(self):
    # The DLG paper quotes variances; variance=v must equal sigma=sqrt(v).
    g, key = _tree(1), jax.random.key(2)
    chex.assert_trees_all_close(
        _agg(defenses.gaussian_noise(variance=1e-2))(g, key),
        _agg(defenses.gaussian_noise(sigma=0.1))(g, key))

  def test_laplace_std_is_sqrt2_scale(self):
    b = 0.05
    out = _flat(_agg(defenses.laplacian_noise(b))(
        _big_zeros(), jax.random.key(0)))
    n = out.size
    # Laplace has kurtosis 6, so the std estimate's relative SE is
    # sqrt((kurtosis - 1) / (4n)) = sqrt(5 / (4n)); allow 5 of them.
    self.assertAlmostEqual(out.std() / (math.sqrt(2) * b), 1.0,
                           delta=5 * math.sqrt(5 / (4 * n)))
    # Mean absolute deviation of Laplace(0, b) is b (a Gaussian of the same
    # std would give 0.80 b): it is the right law, not just the right std.
    self.assertAlmostEqual(np.abs(out).mean() / b, 1.0, delta=0.02)

  def test_zero_noise_is_identity(self):
    g = _tree(1)
    for d in (defenses.gaussian_noise(0.0), defenses.laplacian_noise(0.0)):
      chex.assert_trees_all_equal(d.aggregate(g, jax.random.key(0)), g)

  def test_leaves_get_independent_noise(self):
    out = _np(_agg(defenses.gaussian_noise(1.0))(
        {'a': _zeros(64), 'b': _zeros(64)}, jax.random.key(0)))
    self.assertFalse(np.allclose(out['a'], out['b']))

  @parameterized.named_parameters(*[(k, k) for k in _RANDOM])
  def test_same_key_same_output_different_key_differs(self, name):
    agg = _agg(_RANDOM[name](), batch_size=8)
    g = _small(1)
    k1, k2 = jax.random.key(10), jax.random.key(11)
    chex.assert_trees_all_equal(agg(g, k1), agg(g, k1))
    self.assertFalse(np.allclose(_flat(agg(g, k1)), _flat(agg(g, k2))))

  def test_dtype_is_kept(self):
    g = {'w': _zeros(8, dtype=jnp.bfloat16), 'v': _zeros(8, dtype=np.float16)}
    out = _agg(defenses.gaussian_noise(0.1))(g, jax.random.key(0))
    chex.assert_trees_all_equal_dtypes(out, g)


class QuantizeTest(parameterized.TestCase):

  def _normal_range(self, n=4096):
    # Magnitudes in [1e-3, 1e3]: inside fp16's normal range, where the
    # relative precision bound holds.
    rng = np.random.default_rng(0)
    mag = np.exp(rng.uniform(math.log(1e-3), math.log(1e3), n))
    return {'w': jnp.asarray(rng.choice([-1, 1], n) * mag, jnp.float32)}

  @parameterized.named_parameters(('fp16', 'fp16', 2.0**-11),
                                  ('bf16', 'bf16', 2.0**-8))
  def test_float_round_trip_relative_error(self, fmt, unit_roundoff):
    g = self._normal_range()
    out = _agg(defenses.quantize(fmt))(g, None)
    chex.assert_trees_all_equal_dtypes(out, g)
    x, y = np.asarray(g['w']), np.asarray(out['w'])
    rel = np.abs(y - x) / np.abs(x)
    self.assertLessEqual(rel.max(), unit_roundoff)
    self.assertGreater(rel.max(), unit_roundoff / 4)  # it did round

  def test_fp16_range_edges(self):
    # What a real fp16 channel does: tiny gradients vanish, huge ones overflow.
    w = jnp.asarray([1e-9, 1e5, -1e5], jnp.float32)
    out = np.asarray(_agg(defenses.quantize('fp16'))({'w': w}, None)['w'])
    self.assertEqual(out[0], 0.0)
    self.assertTrue(np.all(np.isinf(out[1:])))
    # bf16 keeps float32's range.
    out = np.asarray(_agg(defenses.quantize('bf16'))({'w': w}, None)['w'])
    np.testing.assert_allclose(out, w, rtol=2.0**-8)

  def test_int8_error_at_most_half_step(self):
    g = _tree(3, scale=0.01)
    out = _agg(defenses.quantize('int8'))(g, None)
    chex.assert_trees_all_equal_dtypes(out, g)
    for x, y in zip(jax.tree.leaves(_np(g)), jax.tree.leaves(_np(out))):
      scale = np.abs(x).max() / 127
      self.assertLessEqual(np.abs(x - y).max(), scale / 2 * (1 + 1e-5))
      # Values lie on the grid k * scale, |k| <= 127: at most 255 levels.
      k = y / scale
      np.testing.assert_allclose(k, np.round(k), atol=1e-3)
      self.assertLessEqual(np.abs(np.round(k)).max(), 127)
      # max|g| is representable exactly (up to float rounding).
      self.assertAlmostEqual(np.abs(y).max(), 127 * scale, delta=1e-6 * scale)

  def test_int8_zero_tensor_stays_zero(self):
    g = {'w': _zeros(5)}
    out = _agg(defenses.quantize('int8'))(g, None)
    chex.assert_trees_all_equal(out, g)  # no 0/0


class PruneTest(parameterized.TestCase):

  @parameterized.parameters(0.0, 0.2, 0.5, 0.9, 0.99)
  def test_sparsity_reached_per_tensor(self, sparsity):
    g = _tree(4)
    out = _agg(defenses.prune(sparsity))(g, None)
    for x, y in zip(jax.tree.leaves(_np(g)), jax.tree.leaves(_np(out))):
      n = x.size
      zeros = int(np.sum(y == 0))
      self.assertEqual(zeros, math.floor(sparsity * n + 0.5))
      self.assertLessEqual(abs(zeros / n - sparsity), 0.5 / n + 1e-12)
      kept = y != 0
      # Kept entries are unchanged and at least as large as every pruned one.
      np.testing.assert_array_equal(y[kept], x[kept])
      if zeros and kept.any():
        self.assertGreaterEqual(np.abs(x[kept]).min(), np.abs(x[~kept]).max())

  def test_ties_give_exact_count(self):
    # A threshold rule would zero all or nothing here; pruning is by index.
    out = _agg(defenses.prune(0.25))({'w': jnp.ones((8,))}, None)
    self.assertEqual(int(np.sum(np.asarray(out['w']) == 0)), 2)


class DpSgdTest(parameterized.TestCase):

  def test_clip_bounds_norm_and_keeps_small_examples(self):
    clip, b = 1.0, 6
    # Per-example global norms ~0.01 * sqrt(284) * factor: 3 below C, 3 above.
    factors = np.array([0.1, 0.2, 0.5, 10.0, 20.0, 50.0], np.float32)
    g = jax.tree.map(
        lambda x: x * factors.reshape((b,) + (1,) * (x.ndim - 1)),
        _np(_tree(5, scale=0.01, batch=b)))
    before = _global_norms(g)
    self.assertTrue(np.all(before[:3] < clip) and np.all(before[3:] > clip))
    out = _np(jax.jit(defenses.dp_sgd(clip, 0.0).per_example)(
        jax.tree.map(jnp.asarray, g), jax.random.key(0)))
    after = _global_norms(out)
    self.assertTrue(np.all(after <= clip * (1 + 1e-6)))
    np.testing.assert_allclose(after[3:], clip, rtol=1e-6)
    for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(out)):
      np.testing.assert_array_equal(y[:3], x[:3])  # unchanged, bit for bit
      # Clipping only rescales: the direction is kept.
      ratio = (before[3:] / clip).reshape((3,) + (1,) * (x.ndim - 1))
      np.testing.assert_allclose(y[3:] * ratio, x[3:], rtol=1e-5, atol=1e-7)

  def test_zero_example_stays_zero(self):
    g = {'w': _zeros(2, 3)}
    out = jax.jit(defenses.dp_sgd(1.0, 1.0).per_example)(g, jax.random.key(0))
    chex.assert_trees_all_equal(out, g)  # no 0/0

  @parameterized.parameters(1, 16)
  def test_aggregate_noise_std_is_z_c_over_b(self, batch_size):
    z, clip = 1.3, 0.5
    out = _flat(_agg(defenses.dp_sgd(clip, z), batch_size)(
        _big_zeros(), jax.random.key(0)))
    std = z * clip / batch_size
    self.assertAlmostEqual(out.std() / std, 1.0,
                           delta=5 / math.sqrt(2 * out.size))

  def test_aggregate_needs_batch_size(self):
    d, g, key = defenses.dp_sgd(1.0, 1.0), _tree(0), jax.random.key(0)
    with self.assertRaisesRegex(ValueError, 'batch_size'):
      d.aggregate(g, key)
    with self.assertRaisesRegex(ValueError, 'batch_size'):
      d.aggregate(g, key, batch_size=0)

  def test_apply_is_clip_mean_noise(self):
    b, key = 4, jax.random.key(7)
    d = defenses.dp_sgd(clip_norm=0.5, noise_multiplier=1.0)
    pe = _tree(6, batch=b)

    def manual(pe, key):
      g = d.per_example(pe, jax.random.fold_in(key, 0))
      g = jax.tree.map(lambda x: x.mean(0), g)
      return d.aggregate(g, jax.random.fold_in(key, 1), batch_size=b)

    out = jax.jit(d.apply)(pe, key)
    chex.assert_trees_all_close(out, jax.jit(manual)(pe, key))
    chex.assert_trees_all_equal_shapes(out, _tree(0))

  def test_per_example_rejects_ragged_batch(self):
    with self.assertRaisesRegex(ValueError, 'leading batch axis'):
      defenses.dp_sgd(1.0, 1.0).per_example(
          {'a': _zeros(2, 3), 'b': _zeros(3, 3)}, None)


class ChainTest(parameterized.TestCase):

  def test_deterministic_chain_equals_composition(self):
    g, key = _small(8), jax.random.key(0)
    a, b = defenses.prune(0.5), defenses.quantize('int8')
    chex.assert_trees_all_equal(
        _agg(defenses.chain(a, b))(g, key), _agg(b)(_agg(a)(g, None), None))
    chex.assert_trees_all_equal(
        _agg(defenses.chain(b, a))(g, key), _agg(a)(_agg(b)(g, None), None))

  def test_order_is_honoured(self):
    g, key = _small(8), jax.random.key(0)
    noise, sparse = defenses.gaussian_noise(0.1), defenses.prune(0.5)
    noise_then_prune = _np(_agg(defenses.chain(noise, sparse))(g, key))
    prune_then_noise = _np(_agg(defenses.chain(sparse, noise))(g, key))
    for x in jax.tree.leaves(noise_then_prune):
      self.assertEqual(np.sum(x == 0), math.floor(0.5 * x.size + 0.5))
    for x in jax.tree.leaves(prune_then_noise):
      self.assertEqual(np.sum(x == 0), 0)  # the noise filled the zeros

  def test_stages_get_folded_keys(self):
    g, key = _small(8), jax.random.key(0)
    noise = _agg(defenses.gaussian_noise(0.1))
    k0, k1 = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    twice = _agg(defenses.chain(defenses.gaussian_noise(0.1),
                                defenses.gaussian_noise(0.1)))
    chex.assert_trees_all_close(twice(g, key), noise(noise(g, k0), k1))
    # Independent stages: the two draws differ.
    self.assertFalse(np.allclose(_flat(noise(g, k0)), _flat(noise(g, k1))))

  def test_chain_with_dp_sgd(self):
    d = defenses.chain(defenses.dp_sgd(1.0, 0.0), defenses.quantize('bf16'))
    self.assertTrue(d.needs_per_example)
    out = jax.jit(d.per_example)(_small(9, batch=3), jax.random.key(0))
    self.assertTrue(np.all(_global_norms(out) <= 1.0 + 1e-6))
    # batch_size is passed through the chain to dp_sgd.
    _agg(d, batch_size=3)(_small(0), jax.random.key(0))
    with self.assertRaisesRegex(ValueError, 'batch_size'):
      d.aggregate(_small(0), jax.random.key(0))

  def test_needs_per_example(self):
    self.assertFalse(defenses.identity().needs_per_example)
    self.assertFalse(defenses.chain(defenses.prune(0.1),
                                    defenses.gaussian_noise(1.0)
                                    ).needs_per_example)
    self.assertTrue(defenses.dp_sgd(1.0, 1.0).needs_per_example)

  def test_empty_chain_is_identity(self):
    g = _small(0)
    d = defenses.chain()
    chex.assert_trees_all_equal(d.aggregate(g, jax.random.key(1)), g)
    self.assertEqual(d.describe(), [])

  def test_chain_rejects_non_defense(self):
    with self.assertRaises(TypeError):
      defenses.chain(defenses.prune(0.1), lambda g, k: g)

  @parameterized.named_parameters(*[(k, k) for k in ('dp_sgd', 'chain',
                                                     'int8')])
  def test_jit_matches_eager(self, name):
    d = _ALL[name]()
    g, pe, key = _small(1), _small(2, batch=2), jax.random.key(3)
    agg = functools.partial(d.aggregate, batch_size=2)
    # Tolerances: XLA may fuse x + std * noise into an FMA under jit.
    chex.assert_trees_all_close(jax.jit(agg)(g, key), agg(g, key),
                                rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(jax.jit(d.per_example)(pe, key),
                                d.per_example(pe, key), rtol=1e-5, atol=1e-7)


class BuildTest(parameterized.TestCase):

  def test_build_matches_factories_and_round_trips(self):
    specs = [{'name': 'dp_sgd', 'clip_norm': 1.0, 'noise_multiplier': 1.1},
             {'name': 'prune', 'sparsity': 0.2},
             {'name': 'quantize', 'fmt': 'fp16'},
             {'name': 'laplacian', 'scale': 1e-3},
             {'name': 'gaussian', 'variance': 1e-4}]
    d = defenses.build(specs)
    self.assertEqual(d.describe(), specs)
    self.assertEqual(defenses.build(d.describe()).describe(), specs)
    self.assertTrue(d.needs_per_example)
    direct = defenses.chain(
        defenses.dp_sgd(1.0, 1.1), defenses.prune(0.2),
        defenses.quantize('fp16'), defenses.laplacian_noise(1e-3),
        defenses.gaussian_noise(variance=1e-4))
    pe, key = _small(1, batch=2), jax.random.key(2)
    chex.assert_trees_all_equal(jax.jit(d.apply)(pe, key),
                                jax.jit(direct.apply)(pe, key))

  def test_empty_is_identity(self):
    d = defenses.build([])
    self.assertFalse(d.needs_per_example)
    g = _small(0)
    chex.assert_trees_all_equal(d.aggregate(g, jax.random.key(1)), g)
    pe = _small(0, batch=1)
    chex.assert_trees_all_equal(d.per_example(pe, jax.random.key(1)), pe)

  def test_registry_names(self):
    self.assertEqual(sorted(defenses.DEFENSES),
                     ['dp_sgd', 'gaussian', 'laplacian', 'prune', 'quantize'])

  @parameterized.named_parameters(
      ('unknown_name', [{'name': 'dropout'}], 'choose from'),
      ('missing_name', [{'sigma': 1.0}], 'choose from'),
      ('unknown_option', [{'name': 'gaussian', 'std': 1.0}],
       r"unknown option.*'std'.*options are"),
      ('missing_option', [{'name': 'prune'}], 'sparsity'),
      ('bad_value', [{'name': 'prune', 'sparsity': 1.0}], r'\[0, 1\)'),
      ('not_a_list', {'name': 'prune', 'sparsity': 0.1}, 'list of mappings'),
      ('not_a_mapping', ['prune'], 'mapping'),
  )
  def test_build_errors(self, specs, regex):
    with self.assertRaisesRegex(ValueError, regex):
      defenses.build(specs)


class ValidationTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('sigma_negative', lambda: defenses.gaussian_noise(-1.0), 'sigma'),
      ('sigma_nan', lambda: defenses.gaussian_noise(float('nan')), 'finite'),
      ('variance_negative', lambda: defenses.gaussian_noise(variance=-1e-2),
       'variance'),
      ('sigma_and_variance', lambda: defenses.gaussian_noise(0.1, variance=0.01),
       'exactly one'),
      ('neither', defenses.gaussian_noise, 'exactly one'),
      ('laplace_negative', lambda: defenses.laplacian_noise(-0.1), 'scale'),
      ('fmt', lambda: defenses.quantize('int4'), 'fp16'),
      ('sparsity_one', lambda: defenses.prune(1.0), 'sparsity'),
      ('sparsity_negative', lambda: defenses.prune(-0.1), 'sparsity'),
      ('clip_zero', lambda: defenses.dp_sgd(0.0, 1.0), 'clip_norm'),
      ('clip_inf', lambda: defenses.dp_sgd(float('inf'), 1.0), 'finite'),
      ('z_negative', lambda: defenses.dp_sgd(1.0, -1.0), 'noise_multiplier'),
      ('not_a_number', lambda: defenses.prune('a lot'), 'number'),
  )
  def test_bad_parameters_raise(self, make, regex):
    with self.assertRaisesRegex(ValueError, regex):
      make()


if __name__ == '__main__':
  absltest.main()
