"""Tests for dlg_jax.client.gradients: the shared gradient under BatchNorm's train and eval modes."""

import functools

from absl.testing import absltest
import jax
import jax.numpy as jnp

from dlg_jax import data
from dlg_jax import models
from dlg_jax.client import gradients

SIZE, CLASSES = 16, 16


def _photos(count):
  photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, count)
  return jnp.asarray(photos.images), jnp.asarray(photos.labels)


class BatchNormModeTest(absltest.TestCase):

  def test_train_and_eval_mode_share_different_gradients(self):
    model = models.build({'name': 'resnet18'}, (8, 8, 3), 4)
    variables = jax.jit(model.init)(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    t = jax.nn.one_hot(jnp.array([0, 3]), 4)
    grad = jax.jit(functools.partial(gradients.batch_gradients, model),
                   static_argnames=('train',))
    train = grad(variables, x, t, train=True)
    evaluation = grad(variables, x, t, train=False)
    diff = sum(float(jnp.sum((a - b) ** 2)) for a, b in
               zip(jax.tree.leaves(train), jax.tree.leaves(evaluation)))
    norm = sum(float(jnp.sum(a ** 2)) for a in jax.tree.leaves(train))
    self.assertGreater(diff / norm, 1e-2)


if __name__ == '__main__':
  absltest.main()
