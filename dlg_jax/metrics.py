"""Scores of a reconstruction against the ground truth (host side).

Only this module sees both the attack's output and the `Private` truth.
Images are compared as [0, 1] pixels: MSE, PSNR and SSIM with an 11-pixel
Gaussian window (σ 1.5), the settings of Wang et al. 2004 that dm-pix uses.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

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


def score(result: AttackResult, truth: Private) -> Scores:
  """Per-victim scores; a victim's batch is averaged over its images."""
  rec, true = jnp.asarray(result.images), jnp.asarray(truth.images)
  if rec.shape != true.shape:
    raise ValueError(f'reconstruction shape {rec.shape} differs from the truth {true.shape}.')
  flat = lambda x: x.reshape(-1, *x.shape[2:])
  v, b = true.shape[:2]
  per_image_mse = mse(flat(rec), flat(true)).reshape(v, b)
  per_image_psnr = psnr(flat(rec), flat(true)).reshape(v, b)
  per_image_ssim = ssim(flat(rec), flat(true)).reshape(v, b)
  labels_ok = jnp.mean((jnp.asarray(result.labels) == truth.labels).astype(jnp.float32), axis=1)
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
