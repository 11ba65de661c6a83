"""Robbing the Fed: an imprint block the malicious server puts in front of the model.

The block is flatten → Dense(k) → ReLU → a linear map back to the input
size, added to the input (a residual), → the model, unchanged. Every row of
the first Dense measures the same thing, the image's mean brightness m(x)
(all weights 1/d), and bin i has bias −t_i, so it fires for images with
m(x) > t_i. The thresholds t_0 < t_1 < ... < t_{k−1} are the quantiles
0, 1/k, ..., (k−1)/k of m over PUBLIC images (not the victims'), with t_0
moved below any possible brightness, so every image fires bin 0 and the k
intervals [t_i, t_{i+1}) (the last one open) each hold 1/k of the public
distribution. Every row of the map back is the same small vector c, so an
image's loss gradient reaches every bin it fires with the same weight s(x):

  ∇W_i = Σ_{x: m(x) > t_i} s(x) x,   ∇b_i = Σ_{x: m(x) > t_i} s(x),

and (∇W_i − ∇W_{i+1}) / (∇b_i − ∇b_{i+1}) is the image in interval i when it
is alone there, or the s-weighted average of those that share it
(attacks/imprint.py reads them out). The perturbation the block adds to the
input is at most k·|c| per pixel, 1e-2 of a pixel by default.

One-shot variant (`build(..., target=(lo, hi))`, bins=2): the two
thresholds sit tightly around one target's brightness, so interval 0 holds
the target alone, however many images (users) are summed.

An image is recovered exactly iff no other image of the batch falls in its
interval. Why this placement (`thresholds`), for k rows and B images drawn
from the public distribution:

- Every image must land in a readable cell. k thresholds cut the line into
  k + 1 cells, and an image below the lowest threshold fires no row and
  leaves no gradient: that cell is lost. Moving t_0 below any brightness
  empties it, so all k cells are readable (the top one from the last row
  alone).
- An image in a cell of probability p is alone with probability
  (1 − p)^(B−1), so E = Σ_i B·p_i·(1 − p_i)^(B−1) over the k cells. With
  Σ p_i = 1 this is stationary at p_i = 1/k (f(p) = B·p·(1 − p)^(B−1) is
  concave on [0, 2/B], which holds 1/k whenever k ≥ B/2), hence the
  quantiles 0, 1/k, ..., (k−1)/k: E = B·(1 − 1/k)^(B−1) (`expected_exact`),
  39.05 for k = 128, B = 64.
- The alternative, thresholds at the quantiles j/(k+1), j = 1..k (k + 1
  equal cells, the lowest unreadable), gives B·(k/(k+1))·(1 − 1/(k+1))^(B−1)
  = B·(k/(k+1))^B = 38.96: worse by the lost cell.

Thresholds estimated from N public images give cells whose true
probabilities scatter by about √(k/N) relatively (11% at N = 10,000, 4.6% at
60,000), and unequal cells isolate fewer images (second order: 0.2 of 39.05
at 10,000); the measured mean over 100 batches also scatters by ±0.47 (one
standard deviation) around E: docs/results/malicious_server.md.

References:
  Fowl, Geiping, Czaja, Goldblum, Goldstein, "Robbing the Fed: Directly
  Obtaining Private Data in Federated Learning with Modified Models",
  ICLR 2022, arXiv:2110.13057 (§3, the imprint module).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.models import Model
from dlg_jax.types import PyTree

# Layer names the read-out looks for in the shared gradients.
IN_LAYER, OUT_LAYER, INNER = 'imprint_in', 'imprint_out', 'inner'
# Largest per-pixel change the block makes to the model's input.
PERTURBATION = 1e-2


def expected_exact(bins: int, batch: int) -> float:
  """Expected images recovered exactly: B·(1 − 1/k)^(B−1) (the module docstring derives it).

  Each image falls in one of k equal-probability intervals independently; it
  is recovered iff the other B − 1 images all miss its interval. (The edge
  intervals are covered: bin 0 fires for every image, and the top interval is
  read from the last bin alone, so there are exactly k readable intervals.)

  >>> round(expected_exact(128, 64), 2)
  39.05
  >>> expected_exact(4, 1)
  1.0
  """
  return batch * (1.0 - 1.0 / bins) ** (batch - 1)


def measurement(images: np.ndarray) -> np.ndarray:
  """(N,) mean brightness of (N, H, W, C) images: what every bin row measures."""
  images = np.asarray(images, np.float64)
  return images.reshape(len(images), -1).mean(axis=1)


def thresholds(public: np.ndarray, bins: int) -> np.ndarray:
  """(k,) increasing bin thresholds: quantiles i/k of the public measurements.

  The first is put below any brightness in [0, 1], so bin 0 always fires.

  >>> thresholds(np.linspace(0, 1, 101), 4)
  array([-1.  ,  0.25,  0.5 ,  0.75])
  """
  t = np.quantile(np.asarray(public, np.float64), np.arange(bins) / bins)
  t[0] = -1.0
  return t


class Imprinted(nn.Module):
  """The imprint block, then `inner` (the model the client thinks it trains)."""
  inner: nn.Module
  bins: int

  @property
  def dropout_rate(self) -> float:  # what the client reads to sample masks
    return float(getattr(self.inner, 'dropout_rate', 0.0))

  @property
  def act(self) -> str:  # what label recovery reads (Model.signed_features)
    return getattr(self.inner, 'act', 'relu')

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    flat = x.reshape(x.shape[0], -1)
    h = nn.relu(nn.Dense(self.bins, name=IN_LAYER)(flat))
    back = nn.Dense(flat.shape[-1], use_bias=False, name=OUT_LAYER)(h)
    return self.inner(x + back.reshape(x.shape), train=train)


def build(model: Model, variables: PyTree, public_images: np.ndarray | None, key: jax.Array, *,
          bins: int, target: tuple[float, float] | None = None) -> tuple[Model, PyTree]:
  """The imprinted model and its variables; the inner model keeps its weights.

  Args:
    public_images: (N, H, W, C) images the server may see (not the victims');
      their brightness quantiles set the bins (None with `target`).
    key: draws the direction c of the map back.
    target: one-shot variant (bins=2): the two thresholds (low, high) around
      one target's brightness; the public images are then not used.
  """
  size = int(np.prod(model.input_shape))
  t = thresholds(measurement(public_images), bins) if target is None else np.asarray(target)
  direction = jax.random.normal(key, (size,), jnp.float32)
  direction = direction * (PERTURBATION / bins / jnp.max(jnp.abs(direction)))
  imprint = {
      IN_LAYER: {'kernel': jnp.full((size, bins), 1.0 / size, jnp.float32),
                 'bias': jnp.asarray(-t, jnp.float32)},
      OUT_LAYER: {'kernel': jnp.tile(direction[None], (bins, 1))},
  }
  wrapped = {name: {INNER: tree} for name, tree in dict(variables).items()}
  wrapped['params'] = {**imprint, **wrapped.get('params', {})}
  imprinted = dataclasses.replace(model, module=Imprinted(inner=model.module, bins=bins))
  return imprinted, wrapped


def layer_gradients(grads: PyTree) -> tuple[jax.Array, jax.Array]:
  """(kernel (…, d, k), bias (…, k)) gradients of the imprint layer, or KeyError."""
  layer = grads[IN_LAYER]
  return layer['kernel'], layer['bias']


def describe(config: Mapping[str, Any]) -> str:
  """The server's block in words, for the report's threat model."""
  if config.get('target', -1.0) >= 0:
    return (f'puts a one-shot imprint block in front of the model: 2 bins '
            f'{config["target_width"]} apart around the brightness of the image it targets '
            f'({config["target"]:.9f}, which it knows)')
  return (f'puts a Robbing-the-Fed imprint block of {config["bins"]} brightness bins in front '
          f'of the model (bin thresholds from public data: {config["public"]})')
