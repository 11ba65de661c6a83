"""Tests for dlg_jax.training and the digits loader it trains on."""

import math

from absl.testing import absltest
import chex
import jax
import numpy as np

from dlg_jax import data
from dlg_jax import models
from dlg_jax import preprocess
from dlg_jax import training
from dlg_jax.client import accounting
from dlg_jax.client import gradients
from dlg_jax.types import Dataset


def _small_mlp():
  # A tiny model at digits' native 8×8: the loop, not the model, is under test.
  return models.build({'name': 'mlp', 'hidden_sizes': (32,)}, input_shape=(8, 8, 1),
                      num_classes=10)


def _subset(dataset, n):
  return Dataset(dataset.images[:n], dataset.labels[:n], dataset.num_classes, dataset.names[:n])


class DigitsTest(absltest.TestCase):

  def test_fixed_split(self):
    train = data.load_digits(size=8, channels=1, split='train')
    test = data.load_digits(size=8, channels=1, split='test')
    self.assertEqual((len(train.labels), len(test.labels)), (1347, 450))
    self.assertEqual(train.images.shape[1:], (8, 8, 1))
    self.assertEmpty(set(train.names) & set(test.names))
    self.assertEqual(sorted(np.unique(test.labels)), list(range(10)))
    self.assertBetween(float(train.images.min()), 0.0, 0.0)
    self.assertBetween(float(train.images.max()), 1.0, 1.0)
    again = data.load_digits(size=8, channels=1, split='test')
    np.testing.assert_array_equal(again.images, test.images)
    rgb = data.load_digits(size=32, channels=3, split='test')
    self.assertEqual(rgb.images.shape, (450, 32, 32, 3))

  def test_registered_and_bad_split(self):
    self.assertIn('digits', data.LOADERS)
    with self.assertRaisesRegex(ValueError, 'digits split'):
      data.load_digits(split='val')


class TrainTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.train_set = _subset(data.load_digits(size=8, channels=1, split='train'), 512)
    cls.test_set = data.load_digits(size=8, channels=1, split='test')

  def _train(self, **kwargs):
    model = _small_mlp()
    variables = model.init(jax.random.key(0))
    args = dict(steps=60, batch_size=32, lr=1e-2, key=jax.random.key(1), chunk=30)
    args.update(kwargs)
    return model, variables, *training.train(model, variables, self.train_set, **args)

  def test_learns_and_is_deterministic(self):
    model, init, trained, history = self._train()
    before = training.evaluate(model, init, self.test_set)
    after = training.evaluate(model, trained, self.test_set)
    self.assertGreater(after, 0.8)
    self.assertGreater(after, before + 0.3)
    self.assertLess(history['loss'][-1], history['loss'][0])
    self.assertLen(history['loss'], 2)
    _, _, again, _ = self._train()
    chex.assert_trees_all_close(trained, again)

  def test_trains_on_the_input_the_model_evaluates(self):
    # A normalisation far from the identity (pixels -> [-10, 10]): the loss
    # training reports must be that of `model.apply`, which evaluation and the
    # client use, not that of the bare module on raw pixels.
    model = preprocess.normalized(_small_mlp(), preprocess.Normalization((0.5,), (0.05,)))
    variables = model.init(jax.random.key(0))
    subset = _subset(self.train_set, 64)
    # One full batch: step 0's loss is over every example, in any order.
    _, history = training.train(model, variables, subset, steps=1, batch_size=64, lr=1e-2,
                                key=jax.random.key(1), chunk=1)
    expected = gradients.cross_entropy(model.apply(variables, subset.images, train=True),
                                       jax.nn.one_hot(subset.labels, 10))
    self.assertAlmostEqual(history['loss'][0], float(expected), places=4)

  def test_evaluate_counts_correct_predictions(self):
    model = _small_mlp()
    variables = model.init(jax.random.key(0))
    logits = model.apply(variables, self.test_set.images)
    expected = float(np.mean(np.argmax(logits, -1) == self.test_set.labels))
    self.assertAlmostEqual(training.evaluate(model, variables, self.test_set, batch_size=100),
                           expected, places=6)

  def test_defense_is_applied_to_every_step(self):
    _, _, clean, _ = self._train()
    _, _, noisy, history = self._train(defense=[{'name': 'gaussian', 'sigma': 1.0}])
    self.assertEqual(history['defenses'], [{'name': 'gaussian', 'sigma': 1.0}])
    diff = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), clean, noisy))
    self.assertGreater(max(diff), 1e-3)

  def test_dp_sgd_reports_its_epsilon(self):
    z, steps, batch = 1.0, 40, 32
    for sampling in ('poisson', 'fixed'):
      with self.subTest(sampling=sampling):
        _, _, trained, history = self._train(
            steps=steps, batch_size=batch, chunk=20,
            defense=[{'name': 'dp_sgd', 'clip_norm': 1.0, 'noise_multiplier': z}],
            dp={'delta': 1e-5, 'sampling': sampling})
        expected = accounting.dp_sgd_epsilon(z, batch / 512, steps, 1e-5)
        self.assertAlmostEqual(history['epsilon'], expected, places=9)
        self.assertTrue(math.isfinite(history['epsilon']))
        self.assertEqual((history['sampling_rate'], history['dp_steps'], history['delta']),
                         (batch / 512, steps, 1e-5))
        self.assertEqual('truncated_steps' in history, sampling == 'poisson')
        self.assertTrue(all(np.all(np.isfinite(l)) for l in jax.tree.leaves(trained)))

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, 'dp options only apply'):
      self._train(dp={'delta': 1e-5})
    with self.assertRaisesRegex(ValueError, 'steps must be a positive integer'):
      self._train(steps=0)
    with self.assertRaisesRegex(ValueError, 'exceeds the 512 training images'):
      self._train(batch_size=1000)
    with self.assertRaisesRegex(ValueError, 'dp.sampling'):
      self._train(defense=[{'name': 'dp_sgd', 'clip_norm': 1.0, 'noise_multiplier': 1.0}],
                  dp={'sampling': 'shuffle'})

  def test_poisson_padding(self):
    self.assertEqual(training.max_poisson_batch(64), 97)
    idx, weight, drawn = training._sample(jax.random.key(3), 512, 32, True)
    self.assertEqual(idx.shape, (training.max_poisson_batch(32),))
    self.assertEqual(float(weight.sum()), float(min(int(drawn), len(idx))))
    self.assertLen(set(np.asarray(idx).tolist()), len(idx))  # no example twice


if __name__ == '__main__':
  absltest.main()
