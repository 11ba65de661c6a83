"""Tests for trap weights (server/trap_weights.py) and their read-out (attacks/trap_weights.py)."""

import os
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from configs import trap_weights as trap_config
from dlg_jax import experiment
from dlg_jax import metrics
from dlg_jax import models
from dlg_jax import runner
from dlg_jax.attacks import trap_weights as read_out
from dlg_jax.client import simulate
from dlg_jax.errors import ConfigError
from dlg_jax.server import trap_weights
from dlg_jax.types import Private

SIZE = 8


def _image(brightness, seed):
  """An 8×8 grey image in [0, 1] with the given mean brightness."""
  noise = np.asarray(jax.random.uniform(jax.random.key(seed), (SIZE, SIZE, 1)), np.float64)
  return np.clip(brightness + 0.2 * (noise - noise.mean()), 0, 1).astype(np.float32)


def _row_gradients(images, thresholds):
  """The first layer's gradients when row i measures mean brightness and fires above t_i."""
  model = models.build({'name': 'mlp', 'hidden_sizes': (len(thresholds),)}, (SIZE, SIZE, 1), 3)
  variables = model.init(jax.random.key(0))
  params = dict(variables['params'])
  d = SIZE * SIZE
  params[trap_weights.LAYER] = {'kernel': jnp.full((d, len(thresholds)), 1.0 / d),
                                'bias': -jnp.asarray(thresholds, jnp.float32)}
  truth = Private(jnp.asarray(np.stack(images))[None], jnp.arange(len(images))[None] % 3)
  update, _, _ = simulate.client_update(model, {**variables, 'params': params}, truth,
                                        jax.random.key(2), {'train': True})
  kernel, bias = trap_weights.layer_gradients(update.gradients)
  return np.asarray(kernel[0]), np.asarray(bias[0])


class TrapWeightsTest(absltest.TestCase):

  def test_a_row_fired_by_one_input_gives_it_exactly(self):
    images = [_image(0.1, 0), _image(0.55, 1), _image(0.8, 2)]
    kernel, bias = _row_gradients(images, [0.7])  # only the 0.8 image fires the row
    cands, _ = read_out.candidates(kernel, bias)
    self.assertLessEqual(float(np.max(np.abs(cands[0] - images[2].reshape(-1)))), 1e-5)

  def test_a_row_fired_by_two_inputs_is_a_mixture_not_exact(self):
    images = [_image(0.1, 0), _image(0.55, 1), _image(0.8, 2)]
    kernel, bias = _row_gradients(images, [0.5])  # the 0.55 and 0.8 images fire it
    cands, _ = read_out.candidates(kernel, bias)
    for image in images:
      self.assertGreater(float(np.max(np.abs(cands[0] - image.reshape(-1)))),
                         10 * metrics.EXACT_TOLERANCE)

  def test_read_out_keeps_inputs_repeated_over_rows(self):
    images = [_image(0.1, 0), _image(0.55, 1), _image(0.8, 2)]
    # rows: 0.8 alone (twice), 0.55 + 0.8 (a mixture), nobody
    kernel, bias = _row_gradients(images, [0.7, 0.75, 0.5, 0.95])
    cands = read_out.read_out(kernel, bias, 2)
    self.assertLessEqual(float(np.max(np.abs(cands[0] - images[2].reshape(-1)))), 1e-5)

  def test_the_server_traps_rows_for_a_few_inputs(self):
    model = models.build({'name': 'mlp', 'hidden_sizes': (200,)}, (SIZE, SIZE, 1), 3)
    public = np.random.default_rng(0).random((1000, SIZE, SIZE, 1))
    _, sent = trap_weights.build(model, model.init(jax.random.key(0)), public,
                                 jax.random.key(1), scale=1.05, rate=0.05)
    layer = sent['params'][trap_weights.LAYER]
    fired = public.reshape(1000, -1) @ np.asarray(layer['kernel']) + np.asarray(layer['bias']) > 0
    self.assertAlmostEqual(float(fired.mean()), 0.05, delta=0.01)

  def test_errors_name_the_field(self):
    config = trap_config.get_config('smoke').to_dict()
    config['model'] = {'name': 'lenet', 'options': ''}
    with self.assertRaisesRegex(ConfigError, 'model.name="mlp"'):
      experiment.check(config)
    config = trap_config.get_config('smoke').to_dict()
    config['server']['trap_scale'] = 1.0
    with self.assertRaisesRegex(ConfigError, 'server.trap_scale'):
      experiment.check(config)

  def test_smoke_config_runs_through_the_runner(self):
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(trap_config.get_config('smoke'), os.path.join(tmp, 'run'))
    self.assertEqual(record['summary']['num_victims'], 2)
    self.assertGreaterEqual(record['summary']['mean_exact_recovered'], 0.0)
    self.assertIn('exact_recall', record['victims'][0])


if __name__ == '__main__':
  absltest.main()
