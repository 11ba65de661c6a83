"""Tests for dlg_jax.weights: random, checkpoint and trained weights the server sends."""

import os
import tempfile
from unittest import mock

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import msgpack
import numpy as np

from dlg_jax import data
from dlg_jax import models
from dlg_jax import weights
from dlg_jax.client import gradients
from dlg_jax.errors import ConfigError

SIZE, CLASSES = 16, 16


def _photos(count):
  photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, count)
  return jnp.asarray(photos.images), jnp.asarray(photos.labels)


class WeightsTest(absltest.TestCase):

  def test_checkpoint_round_trip_and_errors(self):
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    # A BatchNorm collection beside the params: both must survive the trip.
    variables = {**model.init(jax.random.key(3)),
                 'batch_stats': {'bn': {'mean': jnp.arange(3.0), 'var': jnp.ones(3)}}}
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'ckpt', 'lenet.msgpack')
      weights.save(path, variables)
      chex.assert_trees_all_equal(weights.load(path, variables), variables)
      loaded = weights.initial({'source': 'checkpoint', 'path': path}, model,
                               jax.random.key(9), None)
      chex.assert_trees_all_equal(loaded['params'], variables['params'])
      other = models.build({'name': 'lenet'}, (8, 8, 3), 4)
      with self.assertRaisesRegex(ValueError, 'model_init.path'):
        weights.load(path, other.init(jax.random.key(0)))
    with self.assertRaisesRegex(FileNotFoundError, 'model_init.path'):
      weights.initial({'source': 'checkpoint', 'path': '/no/such.msgpack'}, model,
                      jax.random.key(0), None)
    with self.assertRaisesRegex(ValueError, 'model_init.source'):
      weights.check({'source': 'pretrained'})
    with self.assertRaisesRegex(ValueError, 'model_init.steps'):
      weights.check({'source': 'train', 'steps': 0})

  def test_bad_checkpoints_end_in_one_line_naming_the_path(self):
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    variables = model.init(jax.random.key(3))
    kernel = ('params', 'Conv_0', 'kernel')
    cases = {
        'nan': (None, r'holds NaN or infinite weights \(1 arrays, e\.g\. params/Conv_0/kernel\); '
                      'the checkpoint is corrupt'),
        'empty': (b'', 'is not a checkpoint written by dlg_jax.weights.save'),
        'random_bytes': (np.random.default_rng(0).bytes(256),
                         'is not a checkpoint written by dlg_jax.weights.save'),
        'not_a_dict': (msgpack.packb(3), "does not hold this model's variables: it lacks"),
    }
    with tempfile.TemporaryDirectory() as tmp:
      for case, (blob, message) in cases.items():
        with self.subTest(case):
          path = os.path.join(tmp, f'{case}.msgpack')
          if blob is None:
            poisoned = jax.tree_util.tree_map_with_path(
                lambda p, leaf: leaf.at[0].set(jnp.nan)
                if tuple(k.key for k in p) == kernel else leaf, variables)
            weights.save(path, poisoned)
          else:
            with open(path, 'wb') as f:
              f.write(blob)
          with self.assertRaisesRegex(ConfigError, message) as cm:
            weights.initial({'source': 'checkpoint', 'path': path}, model, jax.random.key(0), None)
          self.assertIn(f'model_init.path={path!r}', str(cm.exception))
          self.assertNotIn('\n', str(cm.exception))

  def test_diverged_training_is_refused(self):
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    diverged = jax.tree.map(lambda leaf: jnp.full_like(leaf, jnp.inf),
                            model.init(jax.random.key(0)))
    with mock.patch.object(weights.training, 'train',
                           return_value=(diverged, {'loss': [float('nan')]})):
      with self.assertRaisesRegex(ConfigError, 'model_init.source="train" diverged: after 5 Adam '
                                  'steps at model_init.lr=100.0 the weights hold NaN or Inf.*lower '
                                  'model_init.lr'):
        weights.initial({'source': 'train', 'steps': 5, 'lr': 100.0, 'batch_size': 2}, model,
                        jax.random.key(0), data.load({'name': 'photos', 'size': SIZE,
                                                      'channels': 3}, 2))

  def test_random_source_is_the_plain_init(self):
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    chex.assert_trees_all_equal(weights.initial({}, model, jax.random.key(5), None),
                                model.init(jax.random.key(5)))

  def test_training_steps_lower_the_loss(self):
    photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, 16)
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    start = model.init(jax.random.key(0))
    trained = weights.initial({'source': 'train', 'steps': 30, 'lr': 1e-3, 'batch_size': 8},
                              model, jax.random.key(0), photos)
    loss = lambda v: float(gradients.cross_entropy(model.apply(v, jnp.asarray(photos.images)),
                                                   jax.nn.one_hot(photos.labels, CLASSES)))
    self.assertLess(loss(trained), loss(start) - 1.0)  # measured 5.47 -> 2.83 nats


if __name__ == '__main__':
  absltest.main()
