"""Tests for the model zoo: torchvision's parameter counts, shapes, dropout sites.

Parameter counts and ImageNet-sized shapes come from `jax.eval_shape`, which
traces a model without computing it; real forward passes run on 32×32 (75×75
for Inception) inputs with variables drawn on the host, since compiling every
model's initialisers would cost more than the forward passes themselves.
"""

from __future__ import annotations

import functools
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from dlg_jax import models
from dlg_jax.errors import ConfigError
from dlg_jax.models import densenet
from dlg_jax.models import layers
from dlg_jax.models import order
from dlg_jax.models import vit

_SAVED_OPTIMIZATIONS_FLAG = None


def setUpModule():
  # As in flax's example tests: shapes, not speed, are under test, and the
  # deep models otherwise spend most of their time in XLA's optimiser.
  global _SAVED_OPTIMIZATIONS_FLAG
  _SAVED_OPTIMIZATIONS_FLAG = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)


def tearDownModule():
  jax.config.update('jax_disable_most_optimizations', _SAVED_OPTIMIZATIONS_FLAG)


# torchvision.models.<name>(num_classes=1000): sum(p.numel() for p in parameters()).
_TORCHVISION_PARAMS = (
    ('resnet18', 224, 11_689_512, {'stem': 'imagenet'}),
    ('resnet34', 224, 21_797_672, {'stem': 'imagenet'}),
    ('resnet50', 224, 25_557_032, {'stem': 'imagenet'}),
    ('densenet121', 224, 7_978_856, {}),
    ('mobilenet_v2', 224, 3_504_872, {}),
    ('inception_v3', 299, 27_161_264, {}),  # with the auxiliary head
)

# Models with BatchNorm, whose train=True output must differ from eval's.
_BN_MODELS = ('resnet18', 'resnet34', 'resnet50', 'densenet121', 'mobilenet_v2',
              'inception_v3')


def _input_size(name: str) -> int:
  return 75 if name == 'inception_v3' else 32  # Inception's smallest input


def _param_count(model: models.Model) -> int:
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  return sum(leaf.size for leaf in jax.tree.leaves(shapes['params']))


def _host_variables(model: models.Model) -> dict:
  """Variables shaped like `model.init`'s, drawn with numpy on the host.

  Kernels are N(0, 1/fan_in); norms start at scale 1, bias 0, mean 0, var 1.
  """
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = path[-1].key
    if name in ('scale', 'var'):
      return np.ones(leaf.shape, leaf.dtype)
    if name in ('bias', 'mean'):
      return np.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(
      fill, jax.eval_shape(model.init, jax.random.key(0)))


def _images(size: int, batch: int = 2) -> jax.Array:
  return jax.random.uniform(jax.random.key(1), (batch, size, size, 3))


class ParameterCountTest(parameterized.TestCase):

  @parameterized.named_parameters(
      (name, name, size, count, options)
      for name, size, count, options in _TORCHVISION_PARAMS)
  def test_matches_torchvision(self, name, size, count, options):
    model = models.build({'name': name, **options}, (size, size, 3), 1000)
    self.assertEqual(_param_count(model), count)

  def test_running_statistics_are_not_params(self):
    model = models.build({'name': 'resnet18'}, (32, 32, 3), 10)
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    self.assertIn('batch_stats', shapes)
    self.assertNotIn(layers.MASKS, shapes)


class ForwardTest(parameterized.TestCase):

  @parameterized.named_parameters((name, name) for name in sorted(models.MODELS))
  def test_logits_shape_in_eval_and_train(self, name):
    size = _input_size(name)
    model = models.build({'name': name}, (size, size, 3), 10)
    variables = _host_variables(model)
    both = jax.jit(lambda v, x: (model.apply(v, x, train=False),
                                 model.apply(v, x, train=True)))
    logits_eval, logits_train = both(variables, _images(size))
    chex.assert_shape([logits_eval, logits_train], (2, 10))
    chex.assert_tree_all_finite((logits_eval, logits_train))
    if name in _BN_MODELS:
      # Batch statistics differ from the running ones (mean 0, var 1).
      self.assertFalse(np.allclose(logits_eval, logits_train, atol=1e-4))

  @parameterized.named_parameters(
      (name, name, size, {'stem': 'imagenet'} if 'resnet' in name else {})
      for name, size in (('resnet18', 224), ('densenet121', 224),
                         ('mobilenet_v2', 224), ('inception_v3', 299)))
  def test_imagenet_logits_shape(self, name, size, options):
    # Traced only: a real pass at this resolution would dominate the file.
    model = models.build({'name': name, **options}, (size, size, 3), 1000)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    out = jax.eval_shape(model.apply, variables, x)
    self.assertEqual(out.shape, (2, 1000))

  def test_model_init_returns_params_and_batch_stats(self):
    model = models.build({'name': 'resnet18', 'width': 8}, (32, 32, 3), 10)
    variables = jax.jit(model.init)(jax.random.key(0))
    self.assertEqual(set(variables), {'params', 'batch_stats'})
    chex.assert_trees_all_equal_shapes(
        variables, jax.eval_shape(model.init, jax.random.key(0)))

  def test_apply_mutable_returns_batch_statistics(self):
    model = models.build({'name': 'resnet18', 'width': 8}, (32, 32, 3), 10)
    variables = _host_variables(model)
    run = jax.jit(lambda v, x: (model.apply(v, x, train=True),
                                model.apply(v, x, train=True, mutable=True),
                                model.apply(v, x, mutable=True)))
    logits, (logits_too, stats), (_, eval_stats) = run(variables, _images(32))
    chex.assert_trees_all_equal(logits_too, logits)
    chex.assert_trees_all_equal_shapes(stats, {'batch_stats': variables['batch_stats']})
    # Training moves the running averages towards the batch's; evaluation does not.
    self.assertFalse(np.allclose(stats['batch_stats']['stem_bn']['mean'],
                                 variables['batch_stats']['stem_bn']['mean']))
    chex.assert_trees_all_equal(eval_stats, {'batch_stats': variables['batch_stats']})
    plain = models.build({'name': 'mlp', 'hidden_sizes': (8,)}, (32, 32, 3), 10)
    _, none = plain.apply(plain.init(jax.random.key(0)), _images(32), train=True, mutable=True)
    self.assertEqual(none, {})

  def test_resnet_conv_impls_agree(self):
    # im2col must pad like XLA's conv for every stride and padding ResNet uses
    # (7×7/2 pad 3, 3×3/2 pad 1, 1×1/2 shortcuts).
    build = lambda impl: models.build(
        {'name': 'resnet18', 'width': 8, 'stem': 'imagenet', 'conv_impl': impl},
        (32, 32, 3), 10)
    variables = _host_variables(build('xla'))
    x = _images(32)
    run = lambda model: jax.jit(lambda v, xx: model.apply(v, xx, train=True))(variables, x)
    chex.assert_trees_all_close(run(build('im2col')), run(build('xla')),
                                atol=1e-4, rtol=1e-4)

  @parameterized.parameters((0.0, 0), (0.3, 0), (0.3, 1))
  def test_densenet_scanned_layers_equal_unrolled(self, rate, unrolled_blocks):
    # Segments of 2 scanned layers (one full, one of 1 in the block of 3),
    # from the first block or (unrolled_blocks=1) only in the second:
    # same variable tree and initial values, same logits, batch statistics,
    # parameter gradients and dropout masks' effect as the unrolled layers.
    unrolled = densenet.DenseNet(num_classes=3, block_sizes=(3, 2), growth_rate=4,
                                 init_features=8, bn_size=2, act='sigmoid', dropout_rate=rate,
                                 scan_layers=0)
    scanned = unrolled.clone(scan_layers=2, unrolled_blocks=unrolled_blocks)
    x = _images(16)[:2]
    variables = unrolled.init(jax.random.key(0), x)
    chex.assert_trees_all_equal(scanned.init(jax.random.key(0), x), variables)
    masks = {}
    if rate:
      template = {k: v for k, v in variables.items() if k == layers.MASKS}
      masks = layers.sample_masks(jax.random.key(1), template, rate)
    for train in (False, True):
      def run(model, params):
        out, stats = model.apply({**variables, **masks, 'params': params}, x, train=train,
                                 mutable=['batch_stats'])
        return jnp.sum(out ** 2), (out, stats)
      grad = lambda model: jax.grad(run, argnums=1, has_aux=True)(model, variables['params'])
      (g_u, (out_u, stats_u)), (g_s, (out_s, stats_s)) = grad(unrolled), grad(scanned)
      chex.assert_trees_all_close(out_s, out_u, atol=1e-5, rtol=1e-5)
      chex.assert_trees_all_close(stats_s, stats_u, atol=1e-5, rtol=1e-5)
      chex.assert_trees_all_close(g_s, g_u, atol=1e-5, rtol=1e-4)
    # IG's per-layer weights see the layers in the same forward order.
    forward_order = lambda model: order.use_order(
        lambda p: model.apply({**variables, 'params': p}, x), variables['params'])
    self.assertEqual(forward_order(scanned), forward_order(unrolled))

  @parameterized.parameters(0.0, 0.3)
  def test_vit_scanned_blocks_equal_unrolled(self, rate):
    # One scan over the blocks: same variables, logits, parameter and mask
    # gradients (DIA's) and forward order (IG's per-layer weights).
    unrolled = vit.ViT(num_classes=3, width=16, depth=3, num_heads=2, mlp_dim=8,
                       dropout_rate=rate, scan_blocks=False)
    scanned = unrolled.clone(scan_blocks=True)
    x = _images(32)[:2]
    variables = unrolled.init(jax.random.key(0), x)
    chex.assert_trees_all_equal(scanned.init(jax.random.key(0), x), variables)
    masks = {}
    if rate:
      template = {k: v for k, v in variables.items() if k == layers.MASKS}
      masks = layers.sample_masks(jax.random.key(1), template, rate)
    loss = lambda model, v: jnp.sum(model.apply(v, x) ** 2)
    both = [jax.value_and_grad(loss, argnums=1)(m, {**variables, **masks})
            for m in (unrolled, scanned)]
    chex.assert_trees_all_close(both[1], both[0], atol=1e-5, rtol=1e-4)
    forward_order = lambda model: order.use_order(
        lambda p: model.apply({**variables, **masks, 'params': p}, x), variables['params'])
    self.assertEqual(forward_order(scanned), forward_order(unrolled))
    text = lambda model: jax.jit(lambda v: loss(model, v)).lower(variables).as_text()
    self.assertIn('stablehlo.while', text(scanned))
    self.assertNotIn('stablehlo.while', text(unrolled))

  def test_resnet_rejects_unknown_stem(self):
    model = models.build({'name': 'resnet18', 'stem': 'tiny'}, (32, 32, 3), 10)
    with self.assertRaisesRegex(ValueError, 'stem'):
      jax.eval_shape(model.init, jax.random.key(0))

  @parameterized.parameters(75, 299)
  def test_inception_aux_logits_only_in_training(self, size):
    model = models.build({'name': 'inception_v3'}, (size, size, 3), 10)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    self.assertIn('AuxLogits', variables['params'])
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)

    def run(v, xx, train):
      return model.module.apply(v, xx, train=train,
                                mutable=['batch_stats', 'intermediates'])

    logits, state = jax.eval_shape(lambda v, xx: run(v, xx, True), variables, x)
    self.assertEqual(logits.shape, (2, 10))
    (aux,) = state['intermediates']['aux_logits']
    self.assertEqual(aux.shape, (2, 10))
    _, state = jax.eval_shape(lambda v, xx: run(v, xx, False), variables, x)
    self.assertNotIn('intermediates', state)

  def test_vit_mean_pool(self):
    model = models.build({'name': 'vit_small', 'pool': 'mean'}, (32, 32, 3), 10)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    self.assertNotIn('cls', variables['params'])
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    out = jax.eval_shape(lambda v, xx: model.apply(v, xx), variables, x)
    self.assertEqual(out.shape, (2, 10))


_RATE = 0.25


def _vit_sites(batch: int) -> dict:
  tokens, width, heads, mlp = 65, 256, 8, 512  # 64 patches + CLS
  block = {
      'attention': {'dropout': {'mask': (batch, heads, tokens, tokens)},
                    'out_dropout': {'mask': (batch, tokens, width)}},
      'mlp_dropout1': {'mask': (batch, tokens, mlp)},
      'mlp_dropout2': {'mask': (batch, tokens, width)},
  }
  return {'embedding_dropout': {'mask': (batch, tokens, width)},
          **{f'block{i}': block for i in range(1, 5)}}


_MASK_SITES = {
    'mlp': lambda batch: {'dropout1': {'mask': (batch, 1024)},
                          'dropout2': {'mask': (batch, 1024)}},
    'vit_small': _vit_sites,
}


@functools.cache
def _dropout_case(name: str):
  """(model with dropout, same model without, variables, jitted apply)."""
  dropout = models.build({'name': name, 'dropout_rate': _RATE}, (32, 32, 3), 10)
  plain = models.build({'name': name, 'dropout_rate': 0.0}, (32, 32, 3), 10)
  variables = jax.jit(dropout.init)(jax.random.key(0))  # dropout has no params
  apply = jax.jit(lambda model, v, x, masks: model.apply(v, x, masks=masks),
                  static_argnums=0)
  return dropout, plain, variables, functools.partial(apply, dropout)


class DropoutMaskTest(parameterized.TestCase):

  @parameterized.parameters('mlp', 'vit_small')
  def test_mask_template_lists_sites(self, name):
    model, _, variables, _ = _dropout_case(name)
    template = model.mask_template(variables, batch_size=3)
    self.assertEqual(jax.tree.map(lambda m: m.shape, template), _MASK_SITES[name](3))
    chex.assert_trees_all_equal(template, jax.tree.map(jnp.ones_like, template))

  @parameterized.parameters('mlp', 'vit_small')
  def test_no_dropout_no_sites(self, name):
    _, plain, variables, _ = _dropout_case(name)
    self.assertEqual(plain.mask_template(variables, batch_size=2), {})

  @parameterized.parameters('mlp', 'vit_small')
  def test_masks_none_is_the_deterministic_model(self, name):
    model, plain, variables, apply = _dropout_case(name)
    x = _images(32)
    expected = jax.jit(plain.apply)(variables, x)
    chex.assert_trees_all_close(apply(variables, x, None), expected,
                                atol=1e-5, rtol=1e-5)
    # Keep-all masks scaled by (1 - rate) cancel the inverted-dropout scaling
    # at every site, so this holds only if every site is x * mask / (1 - rate).
    template = model.mask_template(variables, batch_size=2)
    scaled = jax.tree.map(lambda m: m * (1.0 - _RATE), template)
    chex.assert_trees_all_close(apply(variables, x, scaled), expected,
                                atol=1e-5, rtol=1e-5)

  @parameterized.parameters('mlp', 'vit_small')
  def test_sampled_masks_change_the_output(self, name):
    model, _, variables, apply = _dropout_case(name)
    x = _images(32)
    masks = layers.sample_masks(jax.random.key(2), model.mask_template(variables, 2),
                                _RATE)
    dropped = apply(variables, x, masks)
    chex.assert_shape(dropped, (2, 10))
    self.assertFalse(np.allclose(dropped, apply(variables, x, None), atol=1e-4))


class InitTest(absltest.TestCase):

  def test_init_is_one_program_shared_by_equal_models(self):
    def build():
      return models.build({'name': 'resnet18', 'options': 'width=4'}, (16, 16, 3), 10)
    model = build()
    variables = model.init(jax.random.key(0))
    compiled = models._initial_variables._cache_size()  # pylint: disable=protected-access
    build().init(jax.random.key(1))  # an equal model, another key: no new program
    self.assertEqual(models._initial_variables._cache_size(), compiled)  # pylint: disable=protected-access
    again = build().init(jax.random.key(0))
    chex.assert_trees_all_equal(variables, again)
    self.assertEqual(set(variables), {'params', 'batch_stats'})
    # The eager initialisers' values, up to XLA fusing each scale into its sampling.
    x = jnp.zeros((1, 16, 16, 3))
    eager = dict(model.module.init(jax.random.key(0), x, train=False))
    chex.assert_trees_all_close(variables, eager, rtol=1e-6, atol=1e-7)


class BuildTest(absltest.TestCase):

  def test_unknown_name_lists_choices(self):
    with self.assertRaisesRegex(ValueError, 'unknown model') as cm:
      models.build({'name': 'resnet1000'}, (32, 32, 3), 10)
    for name in ('resnet18', 'densenet121', 'inception_v3', 'mobilenet_v2', 'mlp',
                 'vit_small'):
      self.assertIn(repr(name), str(cm.exception))

  def test_unknown_option_lists_options(self):
    with self.assertRaisesRegex(ValueError, 'stem'):
      models.build({'name': 'resnet50', 'depth': 50}, (32, 32, 3), 10)

  def test_options_text_sets_module_fields(self):
    model = models.build({'name': 'resnet18', 'options': 'width=8, act=sigmoid, stem=imagenet'},
                         (32, 32, 3), 10)
    self.assertEqual((model.module.width, model.module.act, model.module.stem),
                     (8, 'sigmoid', 'imagenet'))
    model = models.build({'name': 'mlp', 'options': 'hidden_sizes=(16, 8)'}, (8, 8, 1), 3)
    self.assertEqual(model.module.hidden_sizes, (16, 8))
    self.assertEqual(models.build({'name': 'lenet', 'options': ''}, (32, 32, 3), 10).module,
                     models.build({'name': 'lenet'}, (32, 32, 3), 10).module)

  def test_bad_options_say_what_to_write(self):
    cases = {
        'not keyword=value': ('width', 'must look like "width=16,act=sigmoid"'),
        'not a literal': ('width=int(3)', 'must look like'),
        'unknown field': ('depth=50', r"has no option\(s\) \['depth'\]"),
        'given twice': ('width=8', 'set both as fields and in model.options'),
        'wrong type': ('width=sixteen', 'needs width of type int'),
        'not settable from text': ('block=BasicBlock', 'cannot set block'),
    }
    for case, (text, message) in cases.items():
      with self.subTest(case), self.assertRaisesRegex(ValueError, message):
        models.build({'name': 'resnet18', 'width': 16, 'options': text} if case == 'given twice'
                     else {'name': 'resnet18', 'options': text}, (32, 32, 3), 10)

  def test_too_small_an_input_names_data_size_and_the_smallest_that_works(self):
    # LeNet-5's valid convolutions and pools: a zero fan-in while tracing (the
    # ZeroDivisionError traceback the check replaces).
    with self.assertRaisesRegex(ConfigError, r"model 'lenet5' cannot take data.size=13 .*"
                                'ZeroDivisionError.*The smallest size it takes is 16'):
      models.build({'name': 'lenet5'}, (13, 13, 3), 10)
    self.assertEqual(models.build({'name': 'lenet5'}, (16, 16, 3), 10).input_shape, (16, 16, 3))
    # DenseNet's average pools: an empty array and NaN logits, no error at all.
    tiny = {'name': 'densenet121', 'block_sizes': (1, 1, 1, 1)}
    with self.assertRaisesRegex(ConfigError, r"'densenet121' cannot take data.size=16 .*shape "
                                r'\(1, 0, 0, .*The smallest size it takes is 29'):
      models.build(tiny, (16, 16, 3), 10)
    models.build(tiny, (29, 29, 3), 10)

  def test_a_model_that_fails_at_every_size_keeps_its_error(self):

    class Broken(nn.Module):
      num_classes: int = 10

      @nn.compact
      def __call__(self, x, train=False):
        raise TypeError('a bug, not a size problem')

    with mock.patch.dict(models.MODELS, {'broken': Broken}):
      with self.assertRaisesRegex(TypeError, 'a bug') as cm:
        models.build({'name': 'broken'}, (32, 32, 3), 10)
    self.assertNotIsInstance(cm.exception, ConfigError)

  def test_registry_values_are_dataclass_modules(self):
    # `build` validates options with dataclasses.fields, so no partials.
    for name, cls in models.MODELS.items():
      with self.subTest(name):
        self.assertIsInstance(cls, type)
        self.assertIn('num_classes', cls.__dataclass_fields__)


if __name__ == '__main__':
  absltest.main()
