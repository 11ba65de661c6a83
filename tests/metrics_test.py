"""Tests for dlg_jax.metrics: MSE, PSNR, SSIM, matched batches, label accuracy, failures."""

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlg_jax import data
from dlg_jax import metrics
from dlg_jax.types import AttackResult, Private, Scores

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


def _noisy(truth_images, scale=0.2):
  noise = scale * jax.random.normal(jax.random.key(1), truth_images.shape)
  return jnp.clip(truth_images + noise, 0, 1)


class FailedReconstructionTest(absltest.TestCase):
  """A NaN/Inf reconstruction is a failure: no scores, diverged, out of the means."""

  def setUp(self):
    super().setUp()
    images, labels = _photos(4)
    self.truth = Private(images[:, None], labels[:, None])  # 4 victims of B = 1
    self.rec = _noisy(self.truth.images)

  def test_one_nan_victim_is_left_out_of_the_means_and_counted(self):
    good = metrics.score(_result(self.rec, self.truth.labels), self.truth)
    bad = metrics.score(_result(self.rec.at[2].set(jnp.nan), self.truth.labels), self.truth)
    for field in ('mse', 'psnr', 'ssim'):
      self.assertTrue(np.isnan(getattr(bad, field)[2]), field)
      np.testing.assert_array_equal(np.delete(getattr(bad, field), 2),
                                    np.delete(getattr(good, field), 2))
    np.testing.assert_array_equal(bad.diverged, [False, False, True, False])
    s = metrics.summary(bad, 1.0)
    self.assertEqual((s['num_victims'], s['num_scored'], s['num_diverged']), (4, 3, 1))
    self.assertAlmostEqual(s['mean_psnr'], float(np.mean(np.delete(good.psnr, 2))), places=4)
    self.assertLess(s['mean_psnr'], 30)  # not 100 dB
    self.assertAlmostEqual(s['label_accuracy'], 1.0)  # labels do not depend on the image

  def test_all_nan_scores_nothing(self):
    bad = metrics.score(_result(jnp.full_like(self.rec, jnp.nan), self.truth.labels),
                        self.truth)
    s = metrics.summary(bad, 1.0)
    self.assertEqual((s['num_scored'], s['num_diverged']), (0, 4))
    for key in ('mean_mse', 'mean_psnr', 'mean_ssim'):
      self.assertTrue(np.isnan(s[key]), key)

  def test_one_inf_pixel_fails_its_victim(self):
    bad = metrics.score(_result(self.rec.at[1, 0, 3, 3, 0].set(jnp.inf), self.truth.labels),
                        self.truth)
    np.testing.assert_array_equal(metrics.scored(bad), [True, False, True, True])
    self.assertTrue(bool(bad.diverged[1]))

  def test_exact_reconstruction_is_a_success_capped_at_100_db(self):
    exact = metrics.score(_result(self.truth.images, self.truth.labels), self.truth)
    self.assertTrue(np.all(np.isinf(exact.psnr)))
    s = metrics.summary(exact, 1.0)
    self.assertEqual((s['mean_psnr'], s['num_scored'], s['num_diverged']), (100.0, 4, 0))

  def test_batch_with_a_nan_image_fails_and_one_exact_image_is_not_inf(self):
    images, labels = _photos(4)
    truth = Private(images.reshape(2, 2, SIZE, SIZE, 3), labels.reshape(2, 2))
    rec = _noisy(truth.images).at[0, 1].set(truth.images[0, 1])  # victim 0: one exact image
    rec = rec.at[1, 0].set(jnp.nan)  # victim 1: one NaN image (the matching must still end)
    scores = metrics.score(_result(rec, truth.labels), truth)
    np.testing.assert_array_equal(scores.diverged, [False, True])
    self.assertTrue(np.isfinite(scores.psnr[0]))
    noisy_psnr = float(metrics.psnr(rec[0, 0], truth.images[0, 0]))
    self.assertAlmostEqual(float(scores.psnr[0]), (noisy_psnr + metrics.PSNR_CAP) / 2, places=3)
    self.assertTrue(np.isnan(scores.psnr[1]))

  def test_summary_of_hand_made_scores_counts_nan_as_diverged(self):
    scores = Scores(mse=np.array([0.1, 0.1]), psnr=np.array([10.0, np.nan]),
                    ssim=np.array([0.2, 0.2]), label_correct=np.ones(2),
                    diverged=np.zeros(2, bool), iterations=np.zeros(2), loss=np.zeros(2),
                    mse_trace=())
    s = metrics.summary(scores, 0.0)
    self.assertEqual((s['mean_psnr'], s['num_scored'], s['num_diverged']), (10.0, 1, 1))


class ExactRecoveryTest(absltest.TestCase):

  def test_counts_exact_images_after_matching_and_not_mixtures(self):
    images, true = _photos(4)
    truth = Private(images.reshape(1, 4, SIZE, SIZE, 3), true.reshape(1, 4))
    mixture = (truth.images[:, 2] + truth.images[:, 3]) / 2
    # Shuffled: two exact (one off by 5e-4), one mixture of two, one blank.
    rec = jnp.stack([truth.images[:, 1] + 5e-4, mixture, truth.images[:, 0],
                     jnp.zeros_like(mixture)], axis=1)
    scores = metrics.score(_result(rec, truth.labels), truth)
    np.testing.assert_array_equal(scores.exact_recovered, [2])
    np.testing.assert_allclose(scores.exact_recall, [0.5])
    summary = metrics.summary(scores, 1.0)
    self.assertEqual(summary['mean_exact_recovered'], 2.0)
    self.assertEqual(summary['exact_recall'], 0.5)

  def test_an_error_at_the_tolerance_is_not_exact(self):
    images, true = _photos(1)
    truth = Private(images[None], true[None])
    off = truth.images.at[0, 0, 0, 0, 0].add(2 * metrics.EXACT_TOLERANCE)
    self.assertEqual(metrics.score(_result(off, truth.labels), truth).exact_recovered[0], 0)


def _broadcast_assignment(rec, true):
  """The matching as it was before the costs went row by row: (V, B, B, H, W, C) at once."""
  diff = true[:, :, None] - rec[:, None, :]
  cost = jnp.mean(diff ** 2, axis=(-3, -2, -1))
  cost = jnp.where(jnp.max(jnp.abs(diff), axis=(-3, -2, -1)) < metrics.EXACT_TOLERANCE, -1.0, cost)
  cost = jnp.nan_to_num(cost, nan=jnp.finfo(cost.dtype).max, posinf=jnp.finfo(cost.dtype).max)
  one = lambda c: jnp.zeros(c.shape[0], jnp.int32).at[
      optax.assignment.hungarian_algorithm(c)[0]].set(
          optax.assignment.hungarian_algorithm(c)[1].astype(jnp.int32))
  return jax.vmap(one)(cost)


class AssignmentMemoryTest(absltest.TestCase):

  def test_row_by_row_costs_match_the_broadcast_ones(self):
    true = jax.random.uniform(jax.random.key(0), (3, 12, 8, 8, 1))
    noisy = jnp.clip(true + 0.2 * jax.random.normal(jax.random.key(1), true.shape), 0, 1)
    rec = noisy[:, jax.random.permutation(jax.random.key(2), 12)]
    rec = rec.at[1, 3].set(true[1, 5])  # one exact pair
    # (A NaN image would tie every pairing at the largest cost: either may win.)
    np.testing.assert_array_equal(metrics.assignment(rec, true), _broadcast_assignment(rec, true))

  def test_4096_images_compile_in_far_less_than_the_broadcast_52_gb(self):
    # One-shot imprint via launch.py: 64 users × 64 Fashion-MNIST images in one
    # victim. The (B, B, 784) float32 difference alone would be 52.6 GB.
    images = jax.ShapeDtypeStruct((1, 4096, 28, 28, 1), jnp.float32)
    compiled = metrics._pair_costs.lower(images, images).compile()  # all but SciPy's solver
    self.assertLess(compiled.memory_analysis().temp_size_in_bytes, 1e9)

  def test_a_shuffled_batch_of_512_is_matched_back(self):
    true = jax.random.uniform(jax.random.key(0), (1, 512, 28, 28, 1))
    perm = jax.random.permutation(jax.random.key(1), 512)
    np.testing.assert_array_equal(perm[metrics.assignment(true[:, perm], true)[0]],
                                  np.arange(512))


if __name__ == '__main__':
  absltest.main()
