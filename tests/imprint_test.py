"""Tests for the imprint block (dlg_jax/server/imprint.py) and its read-out (attacks/imprint.py)."""

import os
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from configs import imprint as imprint_config
from configs import one_shot as one_shot_config
from dlg_jax import metrics
from dlg_jax import models
from dlg_jax import runner
from dlg_jax.attacks import imprint as read_out
from dlg_jax.client import simulate
from dlg_jax.server import imprint
from dlg_jax.types import Private

SIZE = 8


def _image(brightness, seed):
  """An 8×8 grey image in [0, 1] with the given mean brightness."""
  noise = np.asarray(jax.random.uniform(jax.random.key(seed), (SIZE, SIZE, 1)), np.float64)
  image = brightness + 0.2 * (noise - noise.mean())
  return np.clip(image, 0, 1).astype(np.float32)


def _attack(images, bins=4):
  """The imprint block on a small MLP, one victim's batch `images`, read out."""
  model = models.build({'name': 'mlp', 'hidden_sizes': (16,)}, (SIZE, SIZE, 1), 3)
  # Public brightness spread evenly over [0, 1]: thresholds -1, 0.25, 0.5, 0.75 for 4 bins.
  public = np.linspace(0, 1, 101)[:, None, None, None] * np.ones((1, SIZE, SIZE, 1))
  model, variables = imprint.build(model, model.init(jax.random.key(0)), public,
                                   jax.random.key(1), bins=bins)
  truth = Private(jnp.asarray(np.stack(images))[None], jnp.zeros((1, len(images)), jnp.int32))
  update, _, _ = simulate.client_update(model, variables, truth, jax.random.key(2),
                                        {'train': True})
  result = read_out.attack(update, model, variables, jax.random.key(3), {'name': 'imprint'})
  return metrics.match(result, truth), truth


class ImprintTest(absltest.TestCase):

  def test_single_input_is_read_out_exactly(self):
    image = _image(0.4, 0)
    result, _ = _attack([image])
    self.assertLessEqual(float(np.max(np.abs(np.asarray(result.images[0, 0]) - image))), 1e-5)

  def test_a_bin_hit_by_two_inputs_is_a_mixture_not_a_success(self):
    alone, first, second = _image(0.1, 0), _image(0.55, 1), _image(0.6, 2)  # last two share [.5, .75)
    result, truth = _attack([alone, first, second])
    error = np.abs(np.asarray(result.images[0]) - np.asarray(truth.images[0])).reshape(3, -1).max(1)
    self.assertLessEqual(error[0], 1e-5)
    self.assertTrue(np.all(error[1:] > 10 * metrics.EXACT_TOLERANCE))
    self.assertEqual(metrics.score(result, truth).exact_recovered[0], 1)

  def test_the_block_leaves_the_input_almost_unchanged(self):
    model = models.build({'name': 'mlp', 'hidden_sizes': (16,)}, (SIZE, SIZE, 1), 3)
    variables = model.init(jax.random.key(0))
    sent, sent_vars = imprint.build(model, variables, np.random.rand(50, SIZE, SIZE, 1),
                                    jax.random.key(1), bins=8)
    x = jnp.asarray(_image(0.7, 3))[None]
    np.testing.assert_allclose(sent.apply(sent_vars, x), model.apply(variables, x), atol=1e-2)

  def test_one_shot_bins_read_one_target_out_of_64_users_of_64(self):
    users = batch = 64
    images = np.asarray(jax.random.uniform(jax.random.key(4), (users * batch, SIZE, SIZE, 1)))
    bright = imprint.measurement(images)
    gaps = np.abs(bright[:, None] - bright[None, :]) + np.eye(len(bright))
    target = int(np.argmax(gaps.min(axis=1)))  # the server knows this one's brightness
    width = gaps[target].min()  # only the target between the two thresholds
    model = models.build({'name': 'mlp', 'hidden_sizes': (16,)}, (SIZE, SIZE, 1), 3)
    model, variables = imprint.build(
        model, model.init(jax.random.key(0)), images[:1], jax.random.key(1), bins=2,
        target=(bright[target] - width / 2, bright[target] + width / 2))
    truth = Private(jnp.asarray(images, jnp.float32)[None],
                    jnp.zeros((1, users * batch), jnp.int32))
    update, _, _ = simulate.client_update(model, variables, truth, jax.random.key(2),
                                          {'train': True, 'users': users})
    result = read_out.attack(update, model, variables, jax.random.key(3), {'name': 'imprint'})
    error = np.abs(np.asarray(result.images[0]) - images[target]).reshape(users * batch, -1)
    self.assertLessEqual(float(error.max(axis=1).min()), 1e-5)

  def test_closed_form_is_the_mean_alone_count_of_public_like_batches(self):
    # k = 16 bins from 20,000 uniform public brightnesses; batches of B = 8 drawn
    # from the same law: the mean count alone in its interval is B·(1 − 1/k)^(B−1).
    rng = np.random.default_rng(0)
    t = imprint.thresholds(rng.random(20_000), 16)
    self.assertEqual(t[0], -1.0)  # cell 0 catches the darkest images: no lost cell
    cells = np.searchsorted(t, rng.random((20_000, 8)), side='right') - 1
    alone = [np.sum(np.bincount(row, minlength=16)[row] == 1) for row in cells]
    self.assertAlmostEqual(float(np.mean(alone)), imprint.expected_exact(16, 8), delta=0.03)
    # k + 1 cells at quantiles j/(k+1) with the lowest one unreadable would do worse.
    self.assertGreater(imprint.expected_exact(128, 64), 64 * (128 / 129) ** 64)

  def test_one_shot_smoke_config_reads_its_target(self):
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(one_shot_config.get_config('smoke'), os.path.join(tmp, 'run'))
    # Victim 0 holds the target (photo 0); victim 1 does not.
    self.assertEqual([v['exact_recovered'] for v in record['victims']], [1, 0])

  def test_smoke_config_runs_through_the_runner(self):
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(imprint_config.get_config('smoke'), os.path.join(tmp, 'run'))
    self.assertEqual(record['summary']['num_victims'], 2)
    self.assertGreaterEqual(record['summary']['mean_exact_recovered'], 0.0)
    self.assertIn('exact_recall', record['victims'][0])


if __name__ == '__main__':
  absltest.main()
