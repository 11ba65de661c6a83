"""Tests for dlg_jax.sweeps.utility: one schema, one cache, one training per key."""

import os
import tempfile
from unittest import mock

from absl.testing import absltest
import ml_collections

from configs import defenses as defenses_config
from configs import dropout_sweep as dropout_config
from dlg_jax import training
from dlg_jax.sweeps import utility


def _config(**settings):
  """A sweep config with a seconds-long utility run on 8×8 digits."""
  return ml_collections.ConfigDict({
      'data': {'size': 8, 'channels': 1},
      'utility': {**utility.DEFAULTS, 'steps': 4, 'batch_size': 8, 'chunk': 4, **settings}})


MLP = {'name': 'mlp', 'hidden_sizes': (16,), 'dropout_rate': 0.25}


class SchemaTest(absltest.TestCase):

  def test_both_sweeps_read_one_schema(self):
    for config in (defenses_config.get_config(), dropout_config.get_config()):
      self.assertEqual(sorted(config.utility), sorted(utility.DEFAULTS))
      self.assertEqual(utility.check(config.utility)['data'], 'digits')

  def test_unknown_fields_and_data_are_named(self):
    with self.assertRaisesRegex(ValueError, r"unknown field\(s\) \['epochs'\]"):
      utility.check({'epochs': 3})
    with self.assertRaisesRegex(ValueError, "'digits'"):
      utility.check({'data': 'cifar10'})

  def test_key_names_model_defense_strength_and_rate(self):
    self.assertEqual(utility.key('lenet'), 'lenet-none-p0')
    self.assertEqual(utility.key('lenet', 'quantize', 'int8'), 'lenet-quantize-int8-p0')
    self.assertEqual(utility.key('mlp', rate=0.1), 'mlp-none-p0.1')

  def test_train_examples_is_the_digits_training_split(self):
    self.assertEqual(utility.train_examples(), 1347)


class MeasureTest(absltest.TestCase):

  def test_trains_once_per_key_then_reads_the_cache(self):
    config = _config()
    with tempfile.TemporaryDirectory() as tmp, \
        mock.patch.object(training, 'train', wraps=training.train) as train:
      first = utility.measure(config, tmp, model_name='mlp', model=MLP, defense='prune',
                              strength=0.5, specs=[{'name': 'prune', 'sparsity': 0.5}])
      self.assertEqual(train.call_count, 1)
      self.assertEqual(os.listdir(os.path.join(tmp, 'utility')), ['mlp-prune-0.5-p0.25.json'])
      self.assertBetween(first['test_accuracy'], 0.0, 1.0)
      self.assertEqual((first['rate'], first['steps'], first['train_examples']), (0.25, 4, 1347))

      again = utility.measure(config, tmp, model_name='mlp', model=MLP, defense='prune',
                              strength=0.5, specs=[{'name': 'prune', 'sparsity': 0.5}])
      self.assertEqual(train.call_count, 1)  # a cache hit trains nothing
      self.assertEqual(again, first)

      # Other settings under the same key are not a hit: the run trains again.
      utility.measure(_config(steps=5), tmp, model_name='mlp', model=MLP, defense='prune',
                      strength=0.5, specs=[{'name': 'prune', 'sparsity': 0.5}])
      self.assertEqual(train.call_count, 2)

  def test_zero_steps_trains_nothing(self):
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(training, 'train') as train:
      self.assertIsNone(utility.measure(_config(steps=0), tmp, model_name='mlp', model=MLP))
      train.assert_not_called()
      self.assertEqual(os.listdir(tmp), [])


if __name__ == '__main__':
  absltest.main()
