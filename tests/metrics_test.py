"""Tests for dlg_jax.metrics: MSE, PSNR, SSIM, matched batches, label accuracy."""

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import data
from dlg_jax import metrics
from dlg_jax.types import AttackResult, Private

SIZE, CLASSES = 16, 16


def _photos(count):
  photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, count)
  return jnp.asarray(photos.images), jnp.asarray(photos.labels)

def _result(images, labels_):
  v = images.shape[0]
  return AttackResult(images=images, labels=labels_, loss=jnp.zeros(v),
                      iterations=jnp.zeros(v, jnp.int32), evaluations=jnp.zeros(v, jnp.int32),
                      diverged=jnp.zeros(v, bool), loss_trace=np.zeros((v, 1)),
                      snapshots=((0, np.asarray(images)),))


class MatchedMetricsTest(absltest.TestCase):

  def test_swapped_batch_of_two_scores_the_same(self):
    images, true = _photos(4)
    truth = Private(images.reshape(2, 2, SIZE, SIZE, 3), true.reshape(2, 2))
    noisy = jnp.clip(truth.images + 0.05 * jax.random.normal(jax.random.key(0),
                                                             truth.images.shape), 0, 1)
    ordered = metrics.score(_result(noisy, truth.labels), truth)
    swapped = metrics.score(_result(noisy[:, ::-1], truth.labels[:, ::-1]), truth)
    for field in ('mse', 'psnr', 'ssim', 'label_correct'):
      chex.assert_trees_all_close(getattr(swapped, field), getattr(ordered, field), rtol=1e-6)
    chex.assert_trees_all_close(swapped.mse_trace[0][1], ordered.mse_trace[0][1], rtol=1e-6)
    self.assertTrue(np.all(ordered.psnr < 30))  # the noise is real, not a trivial match
    matched = metrics.match(_result(noisy[:, ::-1], truth.labels[:, ::-1]), truth)
    np.testing.assert_array_equal(matched.images, noisy)

  def test_label_accuracy_is_a_multiset_overlap(self):
    np.testing.assert_allclose(metrics.label_accuracy(np.array([[3, 1, 1], [0, 2, 2]]),
                                                      np.array([[1, 2, 3], [2, 2, 0]])),
                               [2 / 3, 1.0])


class MetricsTest(absltest.TestCase):

  def test_identical_and_different_images(self):
    x = jax.random.uniform(jax.random.key(0), (3, 32, 32, 3))
    np.testing.assert_allclose(metrics.mse(x, x), 0.0)
    np.testing.assert_allclose(metrics.ssim(x, x), 1.0, atol=1e-5)
    self.assertTrue(np.all(np.isinf(metrics.psnr(x, x))))
    y = jnp.clip(x + 0.1, 0, 1)
    mse = metrics.mse(x, y)
    np.testing.assert_allclose(metrics.psnr(x, y), -10 * np.log10(mse), rtol=1e-5)


if __name__ == '__main__':
  absltest.main()
