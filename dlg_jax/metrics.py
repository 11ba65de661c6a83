"""Scores of a reconstruction against the ground truth (host side).

Only this module sees both the attack's output and the `Private` truth.
Images are compared as [0, 1] pixels: MSE, PSNR and SSIM with an 11-pixel
Gaussian window (σ 1.5), the settings of Wang et al. 2004 that dm-pix uses.

With B > 1 images per victim, a reconstruction's order is arbitrary: each
victim's reconstructions are first matched to its private images by the
optimal assignment (SciPy's linear_sum_assignment, cost = per-pair MSE; breaching's
report does the same), and MSE/PSNR/SSIM are scored per matched pair. Label
accuracy compares the recovered and the true labels as multisets (the
fraction of the B true labels recovered, counting repeats), independent of
the image matching; for B = 1 it is plain equality.

A reconstruction with any non-finite pixel (or a non-finite MSE) is a
failure, not a score: its MSE, PSNR and SSIM are NaN, it counts as diverged,
and the summary's means leave it out and say over how many victims they are
taken (`summary`). Only an exact reconstruction has an infinite PSNR.

Exact recovery: after the matching, an image counts as recovered exactly when
its largest absolute pixel error is below `EXACT_TOLERANCE` (1e-3, well under
one 8-bit grey level); each victim gets the count and the recall (count ÷
batch size). This is the score of closed-form attacks (attacks/imprint.py),
where a reconstruction is either the image or a mixture of several.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from dlg_jax.types import AttackResult, Private, Scores

# What an exact reconstruction (MSE 0, PSNR +inf) counts as in a mean: it is
# a real success, the best there is, but +inf would swamp every other victim.
PSNR_CAP = 100.0

# Largest absolute pixel error (pixels in [0, 1]) of an exactly recovered image.
EXACT_TOLERANCE = 1e-3


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-image mean squared error over (H, W, C); leading axes kept."""
  return jnp.mean((a - b) ** 2, axis=(-3, -2, -1))


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
  """PSNR in dB for pixels in [0, 1] (dm-pix); inf for identical images."""
  return dm_pix.psnr(a, b)


def ssim(a: jax.Array, b: jax.Array) -> jax.Array:
  """SSIM with a Gaussian window of 11 px, σ 1.5 (dm-pix defaults)."""
  return dm_pix.ssim(a, b, filter_size=11, filter_sigma=1.5)


@jax.jit
def _pair_costs(rec: jax.Array, true: jax.Array) -> jax.Array:
  """(V, true, rec) matching costs of `assignment`: per-pair MSE, −1 for an exact pair.

  Nothing of shape (V, B, B, pixels) is built (at B = 4,096 Fashion-MNIST
  images, 64 users × 64 in the one-shot imprint, that was 52 GB). The MSE
  comes from one matmul, (|t|² + |r|² − 2 t·r) / pixels, at full float32
  precision (equal to the direct mean to ~1e-7 absolute). The exactness test
  needs the largest pixel error, which no matmul gives: it is computed one
  true image at a time (`jax.lax.map`, a (V, B, pixels) difference), and only
  for the true images with some reconstruction within MSE 1e-3 — an exact
  pair has MSE below EXACT_TOLERANCE² = 1e-6, far under that bound even with
  the matmul's rounding, so no exact pair is missed.
  """
  v, b = true.shape[:2]
  flat_t, flat_r = true.reshape(v, b, -1), rec.reshape(v, b, -1)
  square = lambda x: jnp.sum(x * x, axis=-1)
  cross = jnp.einsum('vjd,vid->vji', flat_t, flat_r, precision=jax.lax.Precision.HIGHEST)
  cost = jnp.maximum(square(flat_t)[:, :, None] + square(flat_r)[:, None, :] - 2 * cross, 0.0)
  cost = cost / flat_t.shape[-1]  # (V, true, rec); NaN/Inf pixels give NaN or Inf
  near = cost < 1e-3

  def row(args: tuple[jax.Array, jax.Array]) -> jax.Array:  # (V, d), (V, B) -> (V, B) exact
    true_j, near_j = args
    return jax.lax.cond(
        jnp.any(near_j),
        lambda: jnp.max(jnp.abs(true_j[:, None] - flat_r), axis=-1) < EXACT_TOLERANCE,
        lambda: jnp.zeros(near_j.shape, bool))

  exact = jnp.swapaxes(jax.lax.map(row, (jnp.swapaxes(flat_t, 0, 1), jnp.swapaxes(near, 0, 1))),
                       0, 1)
  # An exact pair (`exact_count`) is certainly right: it goes first, or a
  # blank reconstruction next to a dark image could win that image by MSE and
  # leave its exact copy to another (a closed-form attack's padding does that).
  cost = jnp.where(exact, -1.0, cost)
  # A victim with a NaN/Inf image fails whatever the matching, but NaN costs
  # compare false and would pair its finite images at random: as the worst
  # finite cost, they still go to their best partners (for the grid).
  return jnp.nan_to_num(cost, nan=jnp.finfo(cost.dtype).max, posinf=jnp.finfo(cost.dtype).max)


def assignment(rec: jax.Array, true: jax.Array) -> jax.Array:
  """(V, B) index of the reconstruction matched to each true image.

  Minimises the summed per-pair MSE per victim, an exact pair (largest pixel
  error below `EXACT_TOLERANCE`) counting as −1, so exact pairs are always
  kept; `rec[v, perm[v, j]]` is the partner of `true[v, j]`. The costs are
  jitted (`_pair_costs`, memory (V, B, B) + (V, B, pixels), never
  (V, B, B, pixels)); the optimal assignment of each victim's matrix is
  SciPy's `linear_sum_assignment` (shortest augmenting paths, C++) on the
  host: at B = 4,096 it takes seconds where optax's jitted Hungarian
  algorithm took minutes per matrix. Both are exact, so the matching is the
  one before unless two assignments tie in total cost (then either is
  optimal).

  >>> true = jnp.arange(3.0).reshape(1, 3, 1, 1, 1)
  >>> assignment(true[:, ::-1], true)
  Array([[2, 1, 0]], dtype=int32)
  """
  costs = np.asarray(_pair_costs(rec, true), np.float64)
  perm = np.zeros(costs.shape[:2], np.int32)
  for victim, cost in enumerate(costs):
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    perm[victim, rows] = cols
  return jnp.asarray(perm)


def _take(x: jax.Array, perm: jax.Array) -> jax.Array:
  return jnp.take_along_axis(x, perm.reshape(perm.shape + (1,) * (x.ndim - 2)), axis=1)


def match(result: AttackResult, truth: Private) -> AttackResult:
  """`result` with each victim's images (and their labels) in the truth's order.

  Snapshots are matched each on its own. Identity for B = 1.
  """
  rec, true = jnp.asarray(result.images), jnp.asarray(truth.images)
  if rec.shape != true.shape:
    raise ValueError(f'reconstruction shape {rec.shape} differs from the truth {true.shape}.')
  if true.shape[1] == 1:
    return result
  perm = assignment(rec, true)
  snapshots = tuple((it, np.asarray(_take(jnp.asarray(s), assignment(jnp.asarray(s), true))))
                    for it, s in result.snapshots)
  return result._replace(images=_take(rec, perm), labels=_take(jnp.asarray(result.labels), perm),
                         snapshots=snapshots)


def matched_psnr(rec: jax.Array, true: jax.Array) -> np.ndarray:
  """(V,) mean PSNR of each victim's B images, (V, B, H, W, C), after matching."""
  rec, true = jnp.asarray(rec), jnp.asarray(true)
  if true.shape[1] > 1:
    rec = _take(rec, assignment(rec, true))
  flat = lambda x: x.reshape(-1, *x.shape[2:])
  return np.asarray(jnp.mean(psnr(flat(rec), flat(true)).reshape(true.shape[:2]), axis=1))


def label_accuracy(recovered: jax.Array, true: jax.Array) -> np.ndarray:
  """(V,) fraction of each victim's true labels recovered, as multisets.

  >>> label_accuracy(np.array([[3, 1, 1]]), np.array([[1, 2, 3]]))
  array([0.6666667], dtype=float32)
  """
  recovered, true = np.asarray(recovered), np.asarray(true)
  classes = int(max(recovered.max(initial=0), true.max(initial=0))) + 1
  count = lambda x: np.stack([np.bincount(row, minlength=classes) for row in x])
  overlap = np.minimum(count(recovered), count(true)).sum(axis=1)
  return (overlap / true.shape[1]).astype(np.float32)


def exact_count(rec: jax.Array, true: jax.Array) -> np.ndarray:
  """(V,) images of each victim recovered exactly, (V, B, H, W, C) already matched.

  An image is exact when its largest absolute pixel error is below
  `EXACT_TOLERANCE`; a non-finite pixel never is.

  >>> true = np.zeros((1, 2, 1, 1, 1)); rec = true + np.array([0.0, 0.1])[None, :, None, None, None]
  >>> exact_count(rec, true)
  array([1])
  """
  error = np.abs(np.asarray(rec, np.float64) - np.asarray(true, np.float64))
  worst = np.max(error.reshape(error.shape[0], error.shape[1], -1), axis=-1)
  return np.sum(worst < EXACT_TOLERANCE, axis=1).astype(np.int64)  # NaN compares False


def failed(rec: jax.Array, per_image_mse: jax.Array) -> np.ndarray:
  """(V,) True where a victim's reconstruction cannot be scored.

  That is any NaN/Inf pixel in its images (V, B, H, W, C), or a non-finite
  MSE (B,) of one of them (finite pixels so large that the square overflows).

  >>> failed(np.array([[[[[0.5]]]], [[[[np.nan]]]]]), np.array([[0.1], [0.2]]))
  array([False,  True])
  """
  bad_pixels = ~np.all(np.isfinite(np.asarray(rec)), axis=tuple(range(1, np.ndim(rec))))
  return bad_pixels | ~np.all(np.isfinite(np.asarray(per_image_mse)), axis=1)


def score(result: AttackResult, truth: Private) -> Scores:
  """Per-victim scores after matching; a victim's batch is averaged over its images.

  A failed victim (`failed`) gets NaN MSE, PSNR and SSIM and counts as
  diverged. Within a batch, an exact image counts as `PSNR_CAP` dB, so one
  exact image cannot turn its batch's mean PSNR into +inf; a victim whose
  every image is exact keeps +inf.
  """
  result = match(result, truth)
  rec, true = jnp.asarray(result.images), jnp.asarray(truth.images)
  flat = lambda x: x.reshape(-1, *x.shape[2:])
  v, b = true.shape[:2]
  per_image_mse = np.asarray(mse(flat(rec), flat(true)).reshape(v, b))
  per_image_psnr = np.asarray(psnr(flat(rec), flat(true)).reshape(v, b))
  per_image_ssim = np.asarray(ssim(flat(rec), flat(true)).reshape(v, b))
  bad = failed(rec, per_image_mse)
  identical = per_image_mse == 0
  capped = np.where(identical, PSNR_CAP, per_image_psnr)
  victim_psnr = np.where(np.all(identical, axis=1), np.inf, np.mean(capped, axis=1))
  exact = exact_count(rec, true)
  nan_if_bad = lambda x: np.where(bad, np.nan, x).astype(np.float32)
  labels_ok = label_accuracy(result.labels, truth.labels)
  trace = tuple((it, np.asarray(jnp.mean(mse(jnp.asarray(snap), true), axis=1)))
                for it, snap in result.snapshots)
  return Scores(
      mse=nan_if_bad(np.mean(per_image_mse, axis=1)),
      psnr=nan_if_bad(victim_psnr),
      ssim=nan_if_bad(np.mean(per_image_ssim, axis=1)),
      label_correct=np.asarray(labels_ok),
      diverged=np.asarray(result.diverged) | bad,
      iterations=np.asarray(result.iterations),
      loss=np.asarray(result.loss),
      mse_trace=trace,
      exact_recovered=exact,
      exact_recall=(exact / b).astype(np.float32),
  )


def scored(scores: Scores) -> np.ndarray:
  """(V,) True for the victims whose MSE, PSNR and SSIM count in a mean.

  A victim counts when all three are finite, except that an exact
  reconstruction (MSE 0) may have PSNR +inf. Anything else non-finite (NaN,
  -inf, +inf with MSE > 0) is a failure, also in Scores made by hand.
  """
  mse_, psnr_, ssim_ = (np.asarray(x, np.float64) for x in (scores.mse, scores.psnr, scores.ssim))
  psnr_ok = np.isfinite(psnr_) | ((psnr_ == np.inf) & (mse_ == 0))
  return np.isfinite(mse_) & np.isfinite(ssim_) & psnr_ok


def summary(scores: Scores, seconds: float) -> dict[str, float]:
  """The run's headline numbers, as written to metrics.json.

  The rule: mean MSE, PSNR and SSIM are taken over the `num_scored` victims
  whose reconstruction could be scored (`scored`), the same victims for all
  three; a failed one (NaN/Inf pixels or scores) is left out rather than
  given an invented number, counts in `num_diverged`, and makes the means NaN
  (null in metrics.json) when no victim is left. An exact reconstruction is
  a real success and counts as `PSNR_CAP` (100 dB). Label accuracy does not
  depend on the images and is taken over all `num_victims` victims, and so
  are `mean_exact_recovered` (exact images per batch, `exact_count`) and
  `exact_recall` (exact images ÷ all images), when `scores` carries them.

  Example: one good, one exact and one all-NaN victim.

  >>> s = Scores(mse=np.array([0.01, 0.0, np.nan]), psnr=np.array([20.0, np.inf, np.nan]),
  ...            ssim=np.array([0.5, 1.0, np.nan]), label_correct=np.array([1.0, 1.0, 0.0]),
  ...            diverged=np.array([False, False, False]), iterations=np.zeros(3),
  ...            loss=np.zeros(3), mse_trace=())
  >>> {k: round(v, 3) for k, v in summary(s, 2.0).items()}  # doctest: +NORMALIZE_WHITESPACE
  {'mean_mse': 0.005, 'mean_psnr': 60.0, 'mean_ssim': 0.75, 'label_accuracy': 0.667,
   'num_victims': 3, 'num_scored': 2, 'num_diverged': 1, 'seconds': 2.0}
  """
  ok = scored(scores)
  # Identical images are a real success: +inf PSNR counts as the cap, not as
  # a failure (and not as +inf, which would swamp every other victim).
  psnr_ = np.where(np.asarray(scores.psnr) == np.inf, PSNR_CAP, scores.psnr)
  mean = lambda x: float(np.mean(np.asarray(x, np.float64)[ok])) if ok.any() else float('nan')
  return {
      'mean_mse': mean(scores.mse),
      'mean_psnr': mean(psnr_),
      'mean_ssim': mean(scores.ssim),
      'label_accuracy': float(np.mean(scores.label_correct)),
      'num_victims': int(len(scores.mse)),
      'num_scored': int(np.sum(ok)),
      'num_diverged': int(np.sum(np.asarray(scores.diverged, bool) | ~ok)),
      'seconds': float(seconds),
      **exact_summary(scores),
  }


def exact_summary(scores: Scores) -> dict[str, float]:
  """Mean exact images per victim and the recall over all images; {} without them.

  >>> s = Scores(*[None] * 8, exact_recovered=np.array([3, 1]), exact_recall=np.array([.75, .25]))
  >>> exact_summary(s)
  {'mean_exact_recovered': 2.0, 'exact_recall': 0.5}
  """
  if scores.exact_recovered is None:
    return {}
  return {'mean_exact_recovered': float(np.mean(scores.exact_recovered)),
          'exact_recall': float(np.mean(scores.exact_recall))}
