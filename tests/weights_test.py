"""Tests for dlg_jax.weights: random, checkpoint and trained weights the server sends."""

import os
import tempfile

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp

from dlg_jax import data
from dlg_jax import models
from dlg_jax import weights
from dlg_jax.client import gradients

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
