"""DLG and iDLG: objective, label rule, determinism, progress, divergence."""

import functools

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlg_jax import data
from dlg_jax import models
from dlg_jax.attacks import analytic
from dlg_jax.attacks import dlg
from dlg_jax.attacks import idlg
from dlg_jax.attacks import inverting
from dlg_jax.attacks import labels
from dlg_jax.attacks import losses
from dlg_jax.attacks import optimize
from dlg_jax.attacks import registry
from dlg_jax.attacks import solvers
from dlg_jax.client import protocol
from dlg_jax.client import simulate
from dlg_jax.types import Private

SIZE, CLASSES = 16, 16


def _attack_config(**overrides):
  config = dict(labels='idlg', init='rand', distance='l2', steps=30, chunk=10, restarts=2,
                memory=10, linesearch='backtracking', linesearch_steps=10, tol=0.0, train=True)
  config.update(overrides)
  return config


def _setup(num_victims=2, seed=0, model_config=None):
  photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, num_victims)
  model = models.build(model_config or {'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
  variables = model.init(jax.random.key(seed))
  truth = Private(jnp.asarray(photos.images)[:, None], jnp.asarray(photos.labels)[:, None])
  update, truth, _ = simulate.client_update(model, variables, truth, jax.random.key(1),
                                            {'train': True, 'defenses': []})
  return model, variables, update, truth


class ObjectiveTest(absltest.TestCase):

  def test_matching_loss_is_zero_at_the_truth(self):
    model, variables, update, truth = _setup(num_victims=1)
    target = jax.tree.map(lambda g: g[0], update.gradients)
    aux = {'target': target, 'labels': truth.labels[0]}
    loss = functools.partial(losses.matching_loss, model=model, variables=variables,
                             train=True, protocol=protocol.FEDSGD, distance='l2')
    known = loss({'image': truth.images[0]}, aux)
    self.assertLess(float(known), 1e-10)  # float32 rounding of two compiled programs
    # DLG's soft label: a confident logit for the true class is (almost) exact.
    logits = 30.0 * jax.nn.one_hot(truth.labels[0], CLASSES)
    soft = loss({'image': truth.images[0], 'label_logits': logits}, aux)
    self.assertLess(float(soft), 1e-8)
    wrong = loss({'image': truth.images[0] * 0.5}, aux)
    self.assertGreater(float(wrong), 1e-4)

  def test_zero_weight_terms_are_not_computed(self):
    # tv = 0 and mask_weight = 0 must leave the objective's program as it is
    # (the attacks' recorded numbers depend on it), not add 0 × a term.
    model, variables, update, truth = _setup(num_victims=1)
    aux = {'target': jax.tree.map(lambda g: g[0], update.gradients), 'labels': truth.labels[0]}
    text = lambda **terms: jax.jit(functools.partial(
        losses.matching_loss, model=model, variables=variables, train=True,
        protocol=protocol.FEDSGD, distance='cosine', **terms)).lower(
            {'image': truth.images[0]}, aux).as_text()
    self.assertEqual(text(tv=0.0, mask_weight=0.0, rate=0.25), text())
    self.assertNotEqual(text(tv=1e-4), text())


class LabelTest(absltest.TestCase):

  def test_idlg_recovers_labels_for_random_weights_and_labels(self):
    rng = np.random.default_rng(0)
    for name in ('lenet', 'lenet5'):
      model = models.build({'name': name}, (SIZE, SIZE, 3), CLASSES)
      for seed in range(3):
        variables = model.init(jax.random.key(seed))
        images = jnp.asarray(rng.uniform(size=(8, 1, SIZE, SIZE, 3)), jnp.float32)
        true = jnp.asarray(rng.integers(0, CLASSES, size=(8, 1)), jnp.int32)
        update, _, _ = simulate.client_update(model, variables, Private(images, true),
                                              jax.random.key(seed), {'train': True})
        got = labels.recover_labels(update, 'idlg')
        np.testing.assert_array_equal(got, true, err_msg=f'{name} seed {seed}')

  def test_classifier_path_skips_aux_heads(self):
    params = {'AuxLogits': {'Dense_0': {'kernel': jnp.zeros((4, 10))}},
              'fc': {'kernel': jnp.zeros((8, 10)), 'bias': jnp.zeros(10)}}
    self.assertEqual(labels.classifier_path(params, 10), ('fc', 'kernel'))
    with self.assertRaisesRegex(ValueError, 'no dense output layer'):
      labels.classifier_path(params, 7)

  def test_batch_label_recovery_needs_the_model(self):
    model, variables, _, _ = _setup()
    images = jnp.zeros((1, 2, SIZE, SIZE, 3))
    update, _, _ = simulate.client_update(model, variables,
                                          Private(images, jnp.zeros((1, 2), jnp.int32)),
                                          jax.random.key(0), {'train': True})
    with self.assertRaisesRegex(ValueError, 'batch size 2.*needs the model'):
      labels.recover_labels(update, 'idlg')


class AttackTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model, cls.variables, cls.update, cls.truth = _setup()
    cls.result = idlg.attack(cls.update, cls.model, cls.variables, jax.random.key(7),
                             _attack_config())

  def test_attack_lowers_loss_and_mse(self):
    r = self.result
    first, last = r.snapshots[0][1], r.snapshots[-1][1]
    mse = lambda x: np.mean((x - np.asarray(self.truth.images)) ** 2, axis=(1, 2, 3, 4))
    self.assertTrue(np.all(mse(last) < mse(first)), (mse(first), mse(last)))
    self.assertTrue(np.all(r.loss_trace[:, -1] < r.loss_trace[:, 0]))
    np.testing.assert_array_equal(r.labels, self.truth.labels)
    self.assertEqual(r.images.shape, self.truth.images.shape)
    np.testing.assert_array_equal(r.iterations, [30, 30])
    self.assertTrue(np.all(r.evaluations >= 31))
    self.assertFalse(np.any(r.diverged))
    self.assertEqual(r.loss_trace.shape, (2, 30))

  def test_runs_exactly_steps_iterations_whatever_the_chunk(self):
    # 7 = 3 + 3 + 1: the last chunk is shorter instead of running to 9.
    r = idlg.attack(self.update, self.model, self.variables, jax.random.key(7),
                    _attack_config(steps=7, chunk=3, restarts=1))
    np.testing.assert_array_equal(r.iterations, [7, 7])
    self.assertEqual(r.loss_trace.shape, (2, 7))
    self.assertEqual([it for it, _ in r.snapshots], [0, 3, 6, 7])

  def test_same_key_gives_identical_reconstructions(self):
    again = idlg.attack(self.update, self.model, self.variables, jax.random.key(7),
                        _attack_config())
    chex.assert_trees_all_equal(again.images, self.result.images)
    other = idlg.attack(self.update, self.model, self.variables, jax.random.key(8),
                        _attack_config())
    self.assertFalse(np.array_equal(other.images, self.result.images))

  def test_a_nan_victim_does_not_stop_the_others(self):
    poisoned = self.update._replace(gradients=jax.tree.map(
        lambda g: g.at[1].set(jnp.nan), self.update.gradients))
    r = idlg.attack(poisoned, self.model, self.variables, jax.random.key(7), _attack_config())
    self.assertTrue(bool(r.diverged[1]))
    self.assertFalse(bool(r.diverged[0]))
    # Victim 0 is untouched by victim 1's NaNs: same result as the clean run.
    np.testing.assert_allclose(r.images[0], self.result.images[0], atol=1e-5)
    self.assertTrue(np.all(np.isfinite(np.asarray(r.images))))

  def test_dlg_optimises_labels_too(self):
    r = dlg.attack(self.update, self.model, self.variables, jax.random.key(7),
                   _attack_config(labels='optimize', init='randn', steps=20))
    self.assertEqual(r.labels.shape, (2, 1))
    self.assertTrue(np.all(r.loss_trace[:, -1] < r.loss_trace[:, 0]))

  def test_probe_keeps_the_lowest_loss_restart_and_goes_on(self):
    # 3 restarts for 10 iterations, then only the best goes on to 30.
    config = _attack_config(restarts=3, steps=30, probe_steps=10, keep=1)
    r = idlg.attack(self.update, self.model, self.variables, jax.random.key(7), config)
    self.assertEqual(r.loss_trace.shape, (2, 30))
    np.testing.assert_array_equal(r.iterations, [30, 30])
    self.assertTrue(np.all(r.loss_trace[:, -1] < r.loss_trace[:, 10]))
    # The same 3 restarts stopped after 10 iterations: the kept lane is the
    # best of them, and its trace continues from there.
    short = idlg.attack(self.update, self.model, self.variables, jax.random.key(7),
                        _attack_config(restarts=3, steps=10))
    np.testing.assert_array_equal(r.loss_trace[:, :10], short.loss_trace)
    self.assertEqual([s[0] for s in r.snapshots], [0, 10, 20, 30])

  def test_bad_attack_options_are_clear_errors(self):
    for field, value, pattern in (('labels', 'guess', 'attack.labels'),
                                  ('init', 'zeros', 'attack.init'),
                                  ('distance', 'l1', 'attack.distance'),
                                  ('linesearch', 'wolfe', 'attack.linesearch'),
                                  ('lbfgs_form', 'dense', 'attack.lbfgs_form'),
                                  ('block_victims', -1, 'attack.block_victims'),
                                  ('probe_steps', 1.5, 'attack.probe_steps'),
                                  ('keep', 3, 'attack.keep'),
                                  ('steps', 0, 'attack.steps')):
      with self.subTest(field=field), self.assertRaisesRegex(ValueError, pattern):
        dlg.attack(self.update, self.model, self.variables, jax.random.key(0),
                   _attack_config(**{field: value}))
    with self.assertRaisesRegex(ValueError, 'does not optimise labels'):
      idlg.attack(self.update, self.model, self.variables, jax.random.key(0),
                  _attack_config(labels='optimize'))
    with self.assertRaisesRegex(ValueError, 'reveals no labels'):
      idlg.attack(self.update, self.model, self.variables, jax.random.key(0),
                  _attack_config(labels='known'))


class RegistryTest(absltest.TestCase):

  def test_complete_names_the_field_and_its_choices(self):
    with self.assertRaisesRegex(
        ValueError, r"attack\.linesearch must be one of \('backtracking', 'zoom'\), got 'zom'"):
      registry.complete({'name': 'idlg', 'linesearch': 'zom'})
    with self.assertRaisesRegex(ValueError, r"unknown attack 'dlgg'; choose one of \[.*'dlg'"):
      registry.complete({'name': 'dlgg'})

  def test_every_attacks_defaults_pass_its_check(self):
    for name, attack in registry.ATTACKS.items():
      with self.subTest(name):
        self.assertEqual(attack.name, name)
        self.assertEqual(registry.defaults(name)['name'], name)
        attack.check(registry.defaults(name))
        self.assertEqual(registry.complete({'name': name}), registry.defaults(name))

  def test_complete_overlays_the_config_and_defaults_are_fresh_copies(self):
    filled = registry.complete({'name': 'dlg', 'steps': 7, 'extra': 1})
    self.assertEqual((filled['steps'], filled['extra'], filled['memory']), (7, 1, 100))
    copy = registry.defaults('dlg')
    copy['steps'] = 1
    self.assertEqual(registry.defaults('dlg')['steps'], 2500)
    self.assertIsNot(registry.defaults('dlg'), registry.get('dlg').defaults)


class InvertingGradientsTest(absltest.TestCase):

  def test_cosine_objective_is_zero_at_the_truth(self):
    model, variables, update, truth = _setup(num_victims=1)
    aux = {'target': jax.tree.map(lambda g: g[0], update.gradients), 'labels': truth.labels[0]}
    loss = losses.matching_loss({'image': truth.images[0]}, aux, model=model,
                                variables=variables, train=True, protocol=protocol.FEDSGD,
                                distance='cosine')
    self.assertLess(abs(float(loss)), 1e-6)

  def test_signed_adam_keeps_pixels_boxed_and_lowers_the_loss(self):
    model, variables, update, _ = _setup()
    config = dict(labels='idlg', init='randn', steps=16, chunk=8, restarts=2, lr=0.1, tv=1e-4,
                  tol=0.0, train=True)
    r = inverting.attack(update, model, variables, jax.random.key(0), config)
    self.assertTrue(np.all(r.loss_trace[:, -1] < r.loss_trace[:, 0]))
    for _, snap in r.snapshots[1:]:
      self.assertTrue(np.all((snap >= 0) & (snap <= 1)))
    with self.assertRaisesRegex(ValueError, 'Inverting Gradients'):
      inverting.attack(update, model, variables, jax.random.key(0), {**config, 'labels': 'optimize'})

  def test_lr_drops_at_three_eighths_five_eighths_seven_eighths(self):
    schedule = solvers.lr_schedule(0.1, 800)
    np.testing.assert_allclose([schedule(i) for i in (0, 299, 300, 500, 700, 799)],
                               [0.1, 0.1, 0.01, 0.001, 1e-4, 1e-4], rtol=1e-5)


class AnalyticTest(absltest.TestCase):

  def test_dense_input_layer_is_inverted_exactly(self):
    model, variables, update, truth = _setup(model_config={'name': 'mlp',
                                                           'hidden_sizes': (64,)})
    r = analytic.attack(update, model, variables, jax.random.key(0), {'labels': 'idlg'})
    self.assertLessEqual(float(jnp.max(jnp.abs(r.images - truth.images))), 1e-4)
    np.testing.assert_array_equal(r.labels, truth.labels)
    self.assertFalse(np.any(r.diverged))

  def test_needs_a_dense_input_layer_and_batch_size_one(self):
    model, variables, update, _ = _setup()
    with self.assertRaisesRegex(ValueError, 'dense layer with a bias'):
      analytic.attack(update, model, variables, jax.random.key(0), {'labels': 'idlg'})
    with self.assertRaisesRegex(ValueError, 'batch size is 2'):
      analytic.attack(update._replace(batch_size=2), model, variables, jax.random.key(0), {})


class RestartTest(absltest.TestCase):

  def test_lowest_finite_loss_wins(self):
    state = optimize.LaneState(
        z={'image': jnp.arange(6.0).reshape(2, 3)}, opt_state=None,
        loss=jnp.array([[3.0, 1.0, 2.0], [jnp.nan, 5.0, 0.5]]), grad=None,
        iterations=jnp.zeros((2, 3), jnp.int32), evaluations=jnp.zeros((2, 3), jnp.int32),
        done=jnp.zeros((2, 3), bool), diverged=jnp.array([[False] * 3, [True, False, True]]))
    best = optimize.best_restart(state)
    np.testing.assert_array_equal(best, [1, 1])
    np.testing.assert_array_equal(optimize.take_restart(state.z, best)['image'], [1.0, 4.0])
    two = optimize.lowest_restarts(state, 2)
    np.testing.assert_array_equal(two, [[1, 2], [1, 0]])
    np.testing.assert_array_equal(optimize.take_restarts(state.z, two)['image'],
                                  [[1.0, 2.0], [4.0, 3.0]])


class BlocksTest(absltest.TestCase):

  def test_blocks_of_victims_give_the_vmapped_result(self):
    # 3 victims × 2 restarts of a small least-squares problem, in blocks of 2
    # (one full block and a remainder) and all at once.
    # An empty per-victim leaf rides along, as DLG's (V, 0) fixed labels do.
    loss_fn = lambda z, aux: jnp.sum((aux['a'] @ z['x'] - aux['b']) ** 2)
    aux = {'a': jax.random.normal(jax.random.key(0), (3, 6, 4)),
           'b': jax.random.normal(jax.random.key(1), (3, 6)), 'labels': jnp.zeros((3, 0))}
    z = {'x': jax.random.normal(jax.random.key(2), (3, 2, 4))}
    opt = optimize.lbfgs(3, 10, form='compact')
    step = functools.partial(optimize.lbfgs_step, opt, loss_fn, 0.0)
    init = jax.jit(optimize.vmap_lanes(functools.partial(optimize.init_lane, opt, loss_fn)))
    out = {b: optimize.make_chunk(step, 5, block_victims=b)(init(z, aux, {}), aux, {})
           for b in (0, 2)}
    chex.assert_trees_all_close(out[2][0].z, out[0][0].z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[2][1], out[0][1], rtol=1e-4)
    self.assertEqual(out[2][1].shape, (3, 2, 5))

  def test_a_lazy_start_runs_the_eager_starts_iterations(self):
    # init_lane(evaluate=False) leaves the start point's evaluation to the
    # chunk's first, zero-direction step: the same iterations, evaluations
    # and trace follow, and the init program never traces the loss.
    traced = []

    def loss_fn(z, aux):
      traced.append(1)
      r = aux['a'] @ z['x'] - aux['b']
      return jnp.sum(r ** 2) + 0.1 * jnp.sum(jnp.cos(z['x']))
    aux = {'a': jax.random.normal(jax.random.key(0), (3, 6, 4)),
           'b': jax.random.normal(jax.random.key(1), (3, 6))}
    z = {'x': jax.random.normal(jax.random.key(2), (3, 2, 4))}
    for search in ('backtracking', 'zoom'):
      opt = optimize.lbfgs(3, 10, search, form='compact')
      step = functools.partial(optimize.lbfgs_step, opt, loss_fn, 0.0, patience=5, rtol=1e-3)
      out = {}
      for evaluate in (True, False):
        init = jax.jit(optimize.vmap_lanes(functools.partial(
            optimize.init_lane, opt, loss_fn, track_stall=True, evaluate=evaluate)))
        traced.clear()
        state = init(z, aux, {})
        self.assertEqual(bool(traced), evaluate)
        # 2 × 4 iterations: the memory of 3 wraps, the loss is not yet at
        # float rounding (where lanes part on last-bit differences).
        chunk = optimize.make_chunk(step, 4, block_victims=2)
        first, trace1 = chunk(state, aux, {})
        kept = jax.tree.map(np.asarray, first)  # the next chunk donates `first`
        out[evaluate] = (kept, trace1, *chunk(first, aux, {}))
      (e1, et1, e2, et2), (l1, lt1, l2, lt2) = out[True], out[False]
      np.testing.assert_array_equal(l1.iterations, 4)
      for eager, lazy in ((e1, l1), (e2, l2)):
        np.testing.assert_array_equal(lazy.iterations, eager.iterations)
        np.testing.assert_array_equal(lazy.evaluations, eager.evaluations)
        np.testing.assert_array_equal(lazy.done, eager.done)
        chex.assert_trees_all_close(lazy.z, eager.z, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(np.concatenate([lt1, lt2], -1),
                                 np.concatenate([et1, et2], -1), rtol=1e-5)

  def test_a_stalled_lbfgs_lane_stops_and_a_falling_one_goes_on(self):
    # Lane 0: a quadratic with a floor of 1.0, reached in a few iterations,
    # after which its loss cannot fall by 1%; lane 1: a quartic without a
    # floor, whose loss L-BFGS keeps cutting by a constant factor.
    def loss_fn(z, aux):
      return jnp.sum(jnp.abs(z['x'] - 1.0) ** aux['power']) + aux['floor']
    aux = {'power': jnp.array([2.0, 4.0]), 'floor': jnp.array([1.0, 0.0])}
    z = {'x': jnp.zeros((2, 1, 2))}
    opt = optimize.lbfgs(3, 10, form='compact')
    init = jax.jit(optimize.vmap_lanes(functools.partial(optimize.init_lane, opt, loss_fn,
                                                         track_stall=True)))
    step = functools.partial(optimize.lbfgs_step, opt, loss_fn, 0.0, patience=4, rtol=0.01)
    out, trace = optimize.make_chunk(step, 12)(init(z, aux, {}), aux, {})
    # The rule replayed on the lane's trace: it stops 4 iterations after its
    # last fall below 0.99 × the loss of the fall before.
    ref, stale, expected = float(init(z, aux, {}).loss[0, 0]), 0, None
    for i, loss in enumerate(np.asarray(trace[0, 0])):
      ref, stale = (loss, 0) if loss < 0.99 * ref else (ref, stale + 1)
      if stale == 4:
        expected = i + 1
        break
    self.assertIsNotNone(expected)
    self.assertTrue(bool(out.done[0, 0]))
    self.assertEqual(int(out.iterations[0, 0]), expected)
    self.assertTrue(np.isnan(trace[0, 0, expected:]).all())
    self.assertFalse(bool(out.done[1, 0]))

  def test_rel_tol_stops_a_lane_relative_to_the_shared_gradient(self):
    # A quartic around the 'target' (|target|² = 5): the lane stops at the
    # first iteration whose loss is at most 0.01 × 5, whatever came before.
    loss_fn = lambda z, aux: jnp.sum((z['x'] - aux['target']) ** 4)
    aux = {'target': jnp.array([[1.0, 2.0]])}
    z = {'x': jnp.zeros((1, 1, 2))}
    opt = optimize.lbfgs(3, 10, form='compact')
    init = jax.jit(optimize.vmap_lanes(functools.partial(optimize.init_lane, opt, loss_fn,
                                                         rel_tol=0.01)))
    step = functools.partial(optimize.lbfgs_step, opt, loss_fn, 0.0)
    out, trace = optimize.make_chunk(step, 30)(init(z, aux, {}), aux, {})
    below = np.flatnonzero(np.asarray(trace[0, 0]) <= 0.05)
    self.assertGreater(below[0], 0)
    self.assertTrue(bool(out.done[0, 0]))
    self.assertEqual(int(out.iterations[0, 0]), below[0] + 1)
    self.assertTrue(np.isnan(trace[0, 0, below[0] + 1:]).all())

  def test_a_block_whose_lanes_are_all_done_stops_iterating(self):
    # A step that counts every call, done or not: only the block with a
    # running lane (victims 2, 3) may call it; victims 0, 1 were done.
    z = {'x': jnp.zeros((4, 2, 1))}
    init = jax.jit(optimize.vmap_lanes(functools.partial(
        optimize.init_lane, optax.sgd(0.1), lambda z, aux: jnp.sum(z['x'] ** 2))))
    state = init(z, {'a': jnp.zeros(4)}, {})
    state = state._replace(done=state.done.at[:2].set(True).at[2].set(True))
    count = lambda s, aux, shared: (s._replace(iterations=s.iterations + 1), s.loss)
    out, trace = optimize.make_chunk(count, 5, block_victims=2)(state, {'a': jnp.zeros(4)}, {})
    np.testing.assert_array_equal(out.iterations, [[0, 0], [0, 0], [5, 5], [5, 5]])
    self.assertTrue(np.isnan(trace[:2]).all())


class SharedArgumentsTest(absltest.TestCase):

  def test_weights_are_arguments_so_any_weights_share_one_program(self):
    # Closed-over weights would be folded into the program as constants
    # (minutes of compile time for a ResNet, a new program per seed).
    model, variables, update, _ = _setup()
    other = model.init(jax.random.key(7))
    loss_fn = functools.partial(losses.matching_loss, model=model, train=True,
                                protocol=protocol.FEDSGD, distance='l2')
    opt = optimize.lbfgs(3, 5, form='compact')
    aux = {'target': update.gradients, 'labels': jnp.zeros((2, 1), jnp.int32)}
    z = {'image': jnp.full((2, 1, 1, SIZE, SIZE, 3), 0.5)}
    init = jax.jit(optimize.vmap_lanes(functools.partial(optimize.init_lane, opt, loss_fn)))
    state = init(z, aux, {'variables': variables})
    chunk = optimize.make_chunk(functools.partial(optimize.lbfgs_step, opt, loss_fn, 0.0), 2)
    text = lambda v: chunk.lower(state, aux, {'variables': v}).as_text()
    self.assertEqual(text(variables), text(other))
    # ... and the weights are used: other weights, other losses.
    self.assertFalse(np.allclose(init(z, aux, {'variables': other}).loss, state.loss))


class CompactLBFGSTest(absltest.TestCase):

  def test_direction_equals_optax_two_loop(self):
    # Memory 3 over 8 updates: the ring buffer wraps, and one repeated point
    # (s = 0) is a skipped pair in both.
    a, b = optax.scale_by_lbfgs(3), optimize.scale_by_compact_lbfgs(3)
    f = lambda p: jnp.sum(jnp.sin(p['x']) * p['x'] ** 2) + jnp.sum(p['y'] ** 4)
    p = {'x': jnp.linspace(-1.0, 1.5, 5), 'y': jnp.array([[0.3, -0.7]])}
    sa, sb = a.init(p), b.init(p)
    step = jax.jit(lambda g, sa, sb, p: (a.update(g, sa, p), b.update(g, sb, p)))
    for k in range(8):
      (da, sa), (db, sb) = step(jax.grad(f)(p), sa, sb, p)
      chex.assert_trees_all_close(db, da, rtol=2e-4, atol=1e-6)
      if k != 4:
        p = jax.tree.map(lambda x, d: x - 0.2 * d, p, da)

  def test_compact_and_two_loop_attacks_agree(self):
    model, variables, update, _ = _setup()
    run = lambda form: idlg.attack(update, model, variables, jax.random.key(7),
                                   _attack_config(steps=10, lbfgs_form=form))
    compact, two_loop = run('compact'), run('two_loop')
    np.testing.assert_allclose(compact.loss_trace, two_loop.loss_trace, rtol=1e-2)


if __name__ == '__main__':
  absltest.main()
