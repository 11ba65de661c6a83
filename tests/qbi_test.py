"""Tests for QBI (server/qbi.py), read out by attacks/trap_weights.py."""

import os
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from configs import qbi as qbi_config
from dlg_jax import experiment
from dlg_jax import metrics
from dlg_jax import models
from dlg_jax import runner
from dlg_jax.attacks import trap_weights as read_out
from dlg_jax.client import simulate
from dlg_jax.errors import ConfigError
from dlg_jax.server import qbi
from dlg_jax.types import Private

SIZE, ROWS, RATE = 8, 400, 0.1


def _sent(public):
  """The MLP (ROWS hidden units) with the QBI first layer built on `public`."""
  model = models.build({'name': 'mlp', 'hidden_sizes': (ROWS,)}, (SIZE, SIZE, 1), 3)
  return qbi.build(model, model.init(jax.random.key(0)), public, jax.random.key(1), rate=RATE)


def _uniform(count, seed):
  return np.random.default_rng(seed).random((count, SIZE, SIZE, 1)).astype(np.float32)


def _fired(variables, images):
  """(N, ROWS) which rows each image switches on (pre-activation > 0), float64."""
  layer = variables['params'][qbi.LAYER]
  flat = images.reshape(len(images), -1).astype(np.float64)
  pre = flat @ np.asarray(layer['kernel'], np.float64) + np.asarray(layer['bias'], np.float64)
  return pre > 0


class QbiServerTest(absltest.TestCase):

  def test_each_row_fires_for_the_rate_of_public_inputs(self):
    public = _uniform(2000, 0)
    _, sent = _sent(public)
    per_row = _fired(sent, public).mean(axis=0)
    np.testing.assert_allclose(per_row, RATE, atol=2e-3)  # quantiles of these very inputs
    fresh = _fired(sent, _uniform(2000, 1)).mean(axis=0)  # new inputs of the same law
    self.assertAlmostEqual(float(fresh.mean()), RATE, delta=0.01)

  def test_weights_are_standard_normal_not_scaled(self):
    _, sent = _sent(_uniform(500, 0))
    kernel = np.asarray(sent['params'][qbi.LAYER]['kernel'])
    self.assertAlmostEqual(float(kernel.mean()), 0.0, delta=0.02)
    self.assertAlmostEqual(float(kernel.std()), 1.0, delta=0.02)

  def test_rows_hit_once_read_back_exactly_and_rows_hit_twice_are_mixtures(self):
    model, sent = _sent(_uniform(2000, 0))
    images = _uniform(10, 2)  # B = 10, p = 1/B
    truth = Private(jnp.asarray(images)[None], jnp.arange(10)[None] % 3)
    update, _, _ = simulate.client_update(model, sent, truth, jax.random.key(2), {'train': True})
    kernel = np.asarray(update.gradients[qbi.LAYER]['kernel'][0], np.float64)
    bias = np.asarray(update.gradients[qbi.LAYER]['bias'][0], np.float64)
    fired = _fired(sent, images)
    hits = fired.sum(axis=0)
    flat = images.reshape(10, -1)
    once, twice = np.flatnonzero((hits == 1) & (bias != 0)), np.flatnonzero(hits == 2)
    self.assertGreater(len(once), 20)
    self.assertGreater(len(twice), 10)
    for row in once:
      alone = flat[np.argmax(fired[:, row])]
      self.assertLess(np.max(np.abs(kernel[:, row] / bias[row] - alone)), 1e-4)
    mixtures = 0
    for row in twice:
      if bias[row] == 0:
        continue
      x1, x2 = flat[fired[:, row]]
      cand = kernel[:, row] / bias[row]
      # The candidate is the gradient-weighted mixture x1 + t·(x2 − x1) of the two ...
      t = float((cand - x1) @ (x2 - x1) / ((x2 - x1) @ (x2 - x1)))
      self.assertLess(np.max(np.abs(cand - x1 - t * (x2 - x1))), 1e-4)
      # ... never exact for either unless the other one's share t·|x2 − x1| (or
      # (1 − t)·|x2 − x1|) is below the tolerance (a negligible gradient weight).
      span = float(np.max(np.abs(x2 - x1)))
      for share, image in ((t, x1), (1 - t, x2)):
        if abs(abs(share) * span / metrics.EXACT_TOLERANCE - 1) > 0.1:  # not borderline
          self.assertEqual(np.max(np.abs(cand - image)) < metrics.EXACT_TOLERANCE,
                           abs(share) * span < metrics.EXACT_TOLERANCE)
      mixtures += min(abs(t), abs(1 - t)) * span >= metrics.EXACT_TOLERANCE
    self.assertGreater(mixtures, 5)
    # The read-out keeps the inputs that some row isolates, all exactly.
    cands = read_out.read_out(kernel, bias, 10)
    isolated = np.unique(np.argmax(fired[:, once], axis=0))
    exact = [np.min(np.abs(cands - flat[i]).max(axis=1)) < metrics.EXACT_TOLERANCE
             for i in isolated]
    self.assertTrue(all(exact))

  def test_closed_forms(self):
    self.assertAlmostEqual(qbi.isolating_probability(0.01, 100), 0.99 ** 99)
    rates = np.linspace(0.001, 0.05, 491)
    best = rates[np.argmax([qbi.isolating_probability(p, 100) for p in rates])]
    self.assertAlmostEqual(best, 0.01, delta=1e-4)  # p = 1/B is the maximum

  def test_errors_name_the_field(self):
    config = qbi_config.get_config('smoke').to_dict()
    config['model'] = {'name': 'lenet', 'options': ''}
    with self.assertRaisesRegex(ConfigError, r"server.name='qbi' .* model.name=\"mlp\""):
      experiment.check(config)
    config = qbi_config.get_config('smoke').to_dict()
    config['server']['name'] = 'imprint'
    with self.assertRaisesRegex(ConfigError, r"set server.name='trap_weights' or 'qbi'"):
      experiment.check(config)

  def test_smoke_config_runs_through_the_runner(self):
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(qbi_config.get_config('smoke'), os.path.join(tmp, 'run'))
    self.assertEqual(record['summary']['num_victims'], 2)
    self.assertGreaterEqual(record['summary']['mean_exact_recovered'], 0.0)


if __name__ == '__main__':
  absltest.main()
