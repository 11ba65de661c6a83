"""Scores of a reconstruction against the ground truth (host side).

Only this module sees both the attack's output and the `Private` truth.
Images are compared as [0, 1] pixels: MSE, PSNR and SSIM with an 11-pixel
Gaussian window (σ 1.5), the settings of Wang et al. 2004 that dm-pix uses.

With B > 1 images per victim, a reconstruction's order is arbitrary: each
victim's reconstructions are first matched to its private images by the
optimal assignment (Hungarian algorithm, cost = per-pair MSE; breaching's
report does the same), and MSE/PSNR/SSIM are scored per matched pair. Label
accuracy compares the recovered and the true labels as multisets (the
fraction of the B true labels recovered, counting repeats), independent of
the image matching; for B = 1 it is plain equality.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlg_jax.types import AttackResult, Private, Scores


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
def assignment(rec: jax.Array, true: jax.Array) -> jax.Array:
  """(V, B) index of the reconstruction matched to each true image.

  Minimises the summed per-pair MSE per victim (optax's Hungarian
  algorithm); `rec[v, perm[v, j]]` is the partner of `true[v, j]`. Jitted:
  run eagerly, the algorithm's while-loops were re-traced and compiled for
  every snapshot.
  """
  cost = jnp.mean((true[:, :, None] - rec[:, None, :]) ** 2, axis=(-3, -2, -1))  # (V, true, rec)

  def one(c):
    rows, cols = optax.assignment.hungarian_algorithm(c)
    return jnp.zeros(c.shape[0], jnp.int32).at[rows].set(cols.astype(jnp.int32))

  return jax.vmap(one)(cost)


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


def score(result: AttackResult, truth: Private) -> Scores:
  """Per-victim scores after matching; a victim's batch is averaged over its images."""
  result = match(result, truth)
  rec, true = jnp.asarray(result.images), jnp.asarray(truth.images)
  flat = lambda x: x.reshape(-1, *x.shape[2:])
  v, b = true.shape[:2]
  per_image_mse = mse(flat(rec), flat(true)).reshape(v, b)
  per_image_psnr = psnr(flat(rec), flat(true)).reshape(v, b)
  per_image_ssim = ssim(flat(rec), flat(true)).reshape(v, b)
  labels_ok = label_accuracy(result.labels, truth.labels)
  trace = tuple((it, np.asarray(jnp.mean(mse(jnp.asarray(snap), true), axis=1)))
                for it, snap in result.snapshots)
  return Scores(
      mse=np.asarray(jnp.mean(per_image_mse, axis=1)),
      psnr=np.asarray(jnp.mean(per_image_psnr, axis=1)),
      ssim=np.asarray(jnp.mean(per_image_ssim, axis=1)),
      label_correct=np.asarray(labels_ok),
      diverged=np.asarray(result.diverged),
      iterations=np.asarray(result.iterations),
      loss=np.asarray(result.loss),
      mse_trace=trace,
  )


def summary(scores: Scores, seconds: float) -> dict[str, float]:
  """The run's headline numbers, as written to metrics.json."""
  finite_psnr = np.where(np.isfinite(scores.psnr), scores.psnr, 100.0)  # identical -> cap
  return {
      'mean_mse': float(np.mean(scores.mse)),
      'mean_psnr': float(np.mean(finite_psnr)),
      'mean_ssim': float(np.mean(scores.ssim)),
      'label_accuracy': float(np.mean(scores.label_correct)),
      'num_victims': int(len(scores.mse)),
      'num_diverged': int(np.sum(scores.diverged)),
      'seconds': float(seconds),
  }
