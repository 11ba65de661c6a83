"""Dropout as data, DIA and WIIG: the properties issue 4 names."""

import functools
from unittest import mock

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import data
from dlg_jax import models
from dlg_jax.attacks import dia
from dlg_jax.attacks import losses
from dlg_jax.attacks import objectives
from dlg_jax.attacks import optimize
from dlg_jax.attacks import registry
from dlg_jax.client import protocol
from dlg_jax.client import simulate
from dlg_jax.models import layers
from dlg_jax.types import Private

SIZE, CLASSES, RATE = 8, 16, 0.25


def _mlp(rate=RATE):
  return models.build({'name': 'mlp', 'hidden_sizes': (32, 32), 'act': 'gelu',
                       'use_bias': False, 'dropout_rate': rate}, (SIZE, SIZE, 3), CLASSES)


def _setup(rate=RATE, num_victims=2, reveal_masks=False):
  photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, num_victims)
  model = _mlp(rate)
  variables = model.init(jax.random.key(0))
  truth = Private(jnp.asarray(photos.images)[:, None], jnp.asarray(photos.labels)[:, None])
  update, truth, masks = simulate.client_update(
      model, variables, truth, jax.random.key(1),
      {'train': True, 'defenses': [], 'reveal_masks': reveal_masks})
  return model, variables, update, truth, masks


def _config(**overrides):
  config = dict(labels='idlg', init='randn', steps=12, chunk=6, restarts=2, lr=0.1, tv=1e-5,
                mask_weight=1e-4, tol=0.0, train=True, schedule='plateau', plateau_patience=4,
                stop_patience=0)
  config.update(overrides)
  return config


class MasksAsDataTest(absltest.TestCase):

  def test_all_ones_mask_at_rate_zero_is_the_deterministic_layer(self):
    x = jax.random.normal(jax.random.key(0), (2, 5))
    layer = layers.MaskedDropout(0.0)
    out = layer.apply({layers.MASKS: {'mask': jnp.ones_like(x)}}, x)
    chex.assert_trees_all_close(out, x)

  def test_keep_everything_masks_give_the_deterministic_model(self):
    # Inverted scaling: a mask of (1 − p) everywhere undoes the 1/(1 − p).
    model = _mlp()
    variables = model.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, SIZE, SIZE, 3))
    masks = jax.tree.map(lambda m: m * (1 - RATE), model.mask_template(variables, 3))
    chex.assert_trees_all_close(model.apply(variables, x, masks=masks),
                                model.apply(variables, x), atol=1e-5)

  def test_client_masks_are_reproducible_from_its_key(self):
    *_, masks_a = _setup()
    *_, masks_b = _setup()
    chex.assert_trees_all_equal(masks_a, masks_b)
    leaves = jax.tree.leaves(masks_a)
    self.assertLen(leaves, 2)  # one site per hidden layer
    for m in leaves:  # per victim, per example, per unit; Bernoulli(1 - p)
      self.assertEqual(m.shape, (2, 1, 32))
      self.assertTrue(set(np.unique(np.asarray(m))) <= {0.0, 1.0})
    self.assertFalse(np.array_equal(leaves[0][0], leaves[0][1]))  # victims differ


class ObjectiveTest(absltest.TestCase):

  def test_dia_objective_is_zero_at_the_true_image_and_masks(self):
    model, variables, update, truth, masks = _setup()
    aux = {'target': jax.tree.map(lambda g: g[0], update.gradients), 'labels': truth.labels[0]}
    true_z = {'image': truth.images[0], 'masks': jax.tree.map(lambda m: m[0], masks)}
    loss = functools.partial(losses.matching_loss, model=model, variables=variables,
                             train=True, protocol=protocol.FEDSGD, distance='cosine')
    self.assertLess(abs(float(loss(true_z, aux, mask_weight=0.0, rate=RATE))), 1e-6)
    # The deterministic model (what IG assumes) does not match the shared gradient.
    ig = loss({'image': truth.images[0]}, aux)
    self.assertGreater(float(ig), 1e-3)

  def test_mask_prior_measures_each_sites_drop_fraction(self):
    masks = {'a': jnp.ones((1, 8)), 'b': jnp.array([[1.0, 0.0, 1.0, 1.0]])}
    np.testing.assert_allclose(objectives.mask_penalty(masks, 0.25), 0.25 + 0.0, rtol=1e-6)

  def test_clamp_keeps_pixels_and_masks_in_unit_interval(self):
    z = {'image': jnp.array([-0.5, 0.5, 1.5]), 'masks': {'m': jnp.array([-2.0, 0.3, 4.0])}}
    out = dia.clamp(z)
    np.testing.assert_allclose(out['image'], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out['masks']['m'], [0.0, 0.3, 1.0])


class AttackTest(absltest.TestCase):

  def test_dia_masks_stay_in_unit_interval_and_loss_falls(self):
    model, variables, update, _, _ = _setup()
    template = model.mask_template(variables, 1)
    z = dia.init_lane_variables(jax.random.key(0), shape=(1, SIZE, SIZE, 3),
                                num_classes=CLASSES, init='randn', template=template, rate=RATE)
    chex.assert_trees_all_equal_shapes(z['masks'], template)
    r = registry.get('dia').run(update, model, variables, jax.random.key(0), _config())
    self.assertTrue(np.all(np.nanmin(r.loss_trace, axis=1) < r.loss_trace[:, 0]))
    self.assertTrue(np.all((np.asarray(r.images) >= 0) & (np.asarray(r.images) <= 1)))
    # The optimiser's masks after a step, clamped.
    step_masks = dia.clamp({'image': z['image'], 'masks': jax.tree.map(
        lambda m: m + 3.0 * jax.random.normal(jax.random.key(2), m.shape), z['masks'])})['masks']
    for m in jax.tree.leaves(step_masks):
      self.assertTrue(bool(jnp.all((m >= 0) & (m <= 1))))

  def test_at_rate_zero_dia_is_ig(self):
    model, variables, update, _, _ = _setup(rate=0.0)
    a = registry.get('dia').run(update, model, variables, jax.random.key(3), _config())
    b = registry.get('ig').run(update, model, variables, jax.random.key(3), _config())
    chex.assert_trees_all_close(a.images, b.images)

  def test_wiig_needs_the_revealed_masks(self):
    model, variables, update, _, _ = _setup()
    with self.assertRaisesRegex(ValueError, 'reveal_masks'):
      registry.get('wiig').run(update, model, variables, jax.random.key(0), _config())
    model, variables, update, _, masks = _setup(reveal_masks=True)
    chex.assert_trees_all_equal(update.known_masks, masks)
    r = registry.get('wiig').run(update, model, variables, jax.random.key(0), _config())
    self.assertFalse(np.any(r.diverged))

  def test_lbfgs_variant_lowers_the_matching_loss(self):
    model, variables, update, _, _ = _setup(reveal_masks=True)
    config = dict(optimizer='lbfgs', labels='idlg', init='rand', distance='l2', steps=10,
                  chunk=5, restarts=1, memory=5, linesearch='backtracking',
                  linesearch_steps=5, tol=0.0, train=True, mask_weight=1e-4)
    for name in ('dia', 'wiig'):
      with self.subTest(name):
        r = registry.get(name).run(update, model, variables, jax.random.key(0), config)
        self.assertTrue(np.all(np.nanmin(r.loss_trace, axis=1) < r.loss_trace[:, 0]))
    with self.assertRaisesRegex(ValueError, 'attack.optimizer'):
      registry.get('dia').run(update, model, variables, jax.random.key(0),
                          {**config, 'optimizer': 'sgd'})

  def test_lbfgs_variant_honours_lbfgs_form(self):
    # DIA's L-BFGS once built its solver without the form (the two-loop
    # direction) while DLG ran the compact one; now one solver serves both.
    model, variables, update, _, _ = _setup(num_victims=1)
    config = dict(optimizer='lbfgs', steps=2, chunk=2, memory=3, linesearch_steps=3)
    for overrides, form in (({}, 'compact'), ({'lbfgs_form': 'two_loop'}, 'two_loop')):
      with self.subTest(form), mock.patch.object(optimize, 'lbfgs',
                                                 wraps=optimize.lbfgs) as lbfgs:
        registry.get('dia').run(update, model, variables, jax.random.key(0),
                                {**config, **overrides})
        self.assertEqual(lbfgs.call_args.kwargs['form'], form)
    with self.assertRaisesRegex(ValueError, 'attack.lbfgs_form'):
      registry.get('dia').run(update, model, variables, jax.random.key(0),
                              {**config, 'lbfgs_form': 'dense'})

  def test_lbfgs_variant_takes_the_lbfgs_solvers_defaults(self):
    lbfgs = registry.complete({'name': 'dia', 'optimizer': 'lbfgs'})
    for field in ('steps', 'chunk', 'tol', 'block_victims', 'lbfgs_form', 'memory'):
      self.assertEqual(lbfgs[field], registry.defaults('idlg')[field], field)
    adam = registry.complete({'name': 'dia'})
    for field in ('steps', 'chunk', 'tol', 'block_victims', 'lr', 'schedule'):
      self.assertEqual(adam[field], registry.defaults('ig')[field], field)

  def test_early_stop_ends_a_flat_run(self):
    model, variables, update, _, _ = _setup()
    # lr 0: nothing improves after the first step, so patience 3 stops each lane.
    r = registry.get('dia').run(update, model, variables, jax.random.key(0),
                            _config(lr=1e-30, steps=30, stop_patience=3))
    self.assertTrue(np.all(np.asarray(r.iterations) <= 6))


if __name__ == '__main__':
  absltest.main()
