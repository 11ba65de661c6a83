"""attacks.stored: traced programs kept on disk, keyed safely, read back without tracing."""

import contextlib
import os
import tempfile
from unittest import mock

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import models
from dlg_jax.attacks import losses
from dlg_jax.attacks import solvers
from dlg_jax.attacks import stored
from dlg_jax.types import Protocol


@contextlib.contextmanager
def store_in(folder: str):
  """The store in `folder` (JAX's own compilation cache stays where it is)."""
  with mock.patch.object(stored, 'cache_folder', return_value=folder):
    yield os.path.join(folder, stored.SUBDIR)


class Mine(nn.Module):  # a researcher's own model: its code is not pinned
  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(3)(x.reshape(x.shape[0], -1))


def counting(traces: list):
  """A jitted (state, data, length) -> (state + Σdata·length, trace) that counts its traces."""
  def fn(state, data, length=2):
    traces.append(1)
    return state + jnp.sum(data) * length, jnp.arange(length, dtype=jnp.float32)
  return jax.jit(fn, donate_argnums=(0,), static_argnames=('length',))


class FingerprintTest(absltest.TestCase):

  def test_zoo_losses_are_pinned_and_tell_apart_what_changes_a_program(self):
    model = models.build({'name': 'mlp'}, (4, 4, 1), 3)
    a = stored.fingerprint(losses.MatchingLoss(model, False, Protocol(), 'l2'))
    self.assertIsNotNone(a)
    self.assertEqual(a, stored.fingerprint(losses.MatchingLoss(model, False, Protocol(), 'l2')))
    self.assertNotEqual(a, stored.fingerprint(losses.MatchingLoss(model, True, Protocol(), 'l2')))
    wider = models.build({'name': 'mlp', 'hidden_sizes': (8,)}, (4, 4, 1), 3)
    self.assertNotEqual(a, stored.fingerprint(losses.MatchingLoss(wider, False, Protocol(),
                                                                  'l2')))

  def test_unpinned_code_gets_no_fingerprint(self):
    mine = models.Model('mine', Mine(), (4, 4, 1), 3)
    self.assertIsNone(stored.fingerprint(losses.MatchingLoss(mine, False, Protocol(), 'l2')))
    self.assertIsNone(stored.fingerprint(lambda x: x))
    self.assertIsNone(stored.fingerprint(counting))  # defined outside dlg_jax
    self.assertIsNone(stored.fingerprint(object()))

  def test_arrays_count_by_content(self):
    a = stored.fingerprint(np.arange(3, dtype=np.float32))
    self.assertEqual(a, stored.fingerprint(jnp.arange(3.0)))
    self.assertNotEqual(a, stored.fingerprint(jnp.arange(3.0) + 1))


class StoredTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.folder = tempfile.mkdtemp()

  def test_a_fresh_start_reads_the_program_and_does_not_trace(self):
    data = jnp.arange(4.0)
    with store_in(self.folder) as where:
      traces = []
      first = stored.stored(counting(traces), 'test program', donate_argnums=(0,))
      out = first(jnp.zeros(()), data, length=3)
      np.testing.assert_allclose(out[0], 18.0)
      self.assertEqual(len(traces), 1)
      self.assertLen(os.listdir(where), 1)
      # A new process: new jitted function, new wrapper, the same identity.
      again = []
      second = stored.stored(counting(again), 'test program', donate_argnums=(0,))
      state, trace = second(jnp.ones(()), data, length=3)
      self.assertEqual(again, [])
      np.testing.assert_allclose(state, 19.0)
      np.testing.assert_allclose(trace, [0.0, 1.0, 2.0])
      # Other shapes, static arguments or identities are other programs.
      second(jnp.ones(()), jnp.arange(5.0), length=3)
      second(jnp.ones(()), data, length=2)
      stored.stored(counting(again), 'another', donate_argnums=(0,))(jnp.ones(()), data)
      self.assertLen(again, 3)
      self.assertLen(os.listdir(where), 4)

  def test_a_damaged_entry_is_traced_again_and_replaced(self):
    with store_in(self.folder) as where:
      stored.stored(counting([]), 'damaged')(jnp.zeros(()), jnp.ones(2))
      (name,) = os.listdir(where)
      with open(os.path.join(where, name), 'wb') as f:
        f.write(b'half a file')
      traces = []
      with self.assertLogs(level='WARNING') as logs:
        state, _ = stored.stored(counting(traces), 'damaged')(jnp.zeros(()), jnp.ones(2))
      self.assertIn('unreadable', logs.output[0])
      self.assertEqual((float(state), len(traces)), (4.0, 1))
      traces.clear()
      stored.stored(counting(traces), 'damaged')(jnp.zeros(()), jnp.ones(2))
      self.assertEqual(traces, [])

  def test_the_store_keeps_to_its_bound_dropping_the_least_recently_used(self):
    with store_in(self.folder) as where:
      program = lambda name: stored.stored(counting([]), name)
      for name in ('a', 'b'):
        program(name)(jnp.zeros(()), jnp.ones(2))
      paths = {name: os.path.join(where, f) for name, f in
               zip(('a', 'b'), sorted(os.listdir(where), key=lambda f: os.path.getmtime(
                   os.path.join(where, f))))}
      os.utime(paths['a'], (1e9, 1e9))  # 'a' written long ago...
      os.utime(paths['b'], (1.5e9, 1.5e9))  # ...and 'b' later than that
      program('a')(jnp.zeros(()), jnp.ones(2))  # ...but 'a' read now: recently used
      size = os.path.getsize(paths['a'])
      with mock.patch.object(stored, 'max_bytes', return_value=2 * size + size // 2):
        program('c')(jnp.zeros(()), jnp.ones(2))  # the third entry does not fit
      self.assertTrue(os.path.exists(paths['a']))
      self.assertFalse(os.path.exists(paths['b']))
      self.assertLen(os.listdir(where), 2)

  def test_an_unwritable_store_warns_and_the_run_goes_on(self):
    with store_in(self.folder) as where:
      with open(where, 'w') as f:  # a file where the store's folder should be
        f.write('not a folder')
      with self.assertLogs(level='WARNING') as logs:
        state, _ = stored.stored(counting([]), 'unwritable')(jnp.zeros(()), jnp.ones(2))
      self.assertLen(logs.output, 1)
      self.assertIn('could not store', logs.output[0])
      self.assertEqual(float(state), 4.0)

  def test_off_without_an_identity_or_a_cache_folder(self):
    fn = counting([])
    self.assertIs(stored.stored(fn, None), fn)
    traces = []
    with store_in(''):
      stored.stored(counting(traces), 'no folder')(jnp.zeros(()), jnp.ones(2))
    self.assertLen(traces, 1)
    self.assertFalse(os.path.exists(os.path.join(self.folder, stored.SUBDIR)))

  def test_solver_programs_are_stored_for_zoo_models_only(self):
    config = {**solvers.LBFGS_DEFAULTS, 'chunk': 2, 'memory': 3, 'block_victims': 0}
    with store_in(self.folder) as where:
      for name, model in (('mine', models.Model('mine', Mine(), (4, 4, 1), 3)),
                          ('mlp', models.build({'name': 'mlp'}, (4, 4, 1), 3))):
        loss = losses.MatchingLoss(model, False, Protocol(), 'l2')
        programs = solvers.programs('lbfgs', loss, config)
        variables = model.init(jax.random.key(0))
        aux = {'target': jax.tree.map(lambda v: v[None], variables['params']),
               'labels': jnp.zeros((1, 1), jnp.int32)}
        state = programs.init({'image': jnp.full((1, 1, 1, 4, 4, 1), 0.5)}, aux,
                              {'variables': variables})
        programs.chunk(state, aux, {'variables': variables})
        self.assertLen(os.listdir(where) if os.path.exists(where) else [],
                       0 if name == 'mine' else 2, name)


if __name__ == '__main__':
  absltest.main()
