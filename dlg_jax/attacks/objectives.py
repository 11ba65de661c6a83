"""Gradient distances and priors (image, dropout masks) that attacks minimise.

Also the per-layer weights of Inverting Gradients' cosine distance: a weight
per parameter tensor, assigned in the order the forward pass *uses* the
tensors (`models.order.use_order`), because the pytree's own leaf order is
alphabetical (a ResNet's 'fc' sorts before its 'stem_conv').
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import jax
import jax.numpy as jnp

from dlg_jax.errors import ConfigError
from dlg_jax.types import PyTree

# Named per-layer weighting schemes of `layer_weights` ('' = uniform).
LAYER_WEIGHTS = ('', 'linear', 'exp')


def l2_distance(a: PyTree, b: PyTree) -> jax.Array:
  """Squared Euclidean distance summed over every leaf (DLG's objective).

  References:
    Zhu et al., "Deep Leakage from Gradients", NeurIPS 2019.

  >>> float(l2_distance({'w': jnp.ones(3)}, {'w': jnp.zeros(3)}))
  3.0
  """
  return sum(jnp.sum((x - y) ** 2) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def cosine_distance(a: PyTree, b: PyTree, weights: Sequence[float] | None = None) -> jax.Array:
  """1 − cosine similarity of the two gradients, flattened over all layers.

  With `weights` (one per leaf, in `jax.tree.leaves` order), every leaf's
  terms of the dot product and of both squared norms are scaled by its
  weight, as Geiping et al.'s code weighs each parameter tensor:
  1 − Σᵢ wᵢ⟨aᵢ, bᵢ⟩ / (√(Σᵢ wᵢ|aᵢ|²) √(Σᵢ wᵢ|bᵢ|²)). All weights 1 is the
  plain distance; a weight 0 drops that leaf.

  References:
    Geiping et al., "Inverting Gradients", NeurIPS 2020.

  >>> a, b = {'w': jnp.array([1., 0.]), 'v': jnp.array([1.])}, {'w': jnp.array([1., 0.]), 'v': jnp.array([-1.])}
  >>> round(float(cosine_distance(a, b)), 4), round(float(cosine_distance(a, b, (0.0, 1.0))), 4)
  (1.0, 0.0)
  """
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  if weights is None:
    weights = (1.0,) * len(la)
  if len(weights) != len(la):
    raise ValueError(f'cosine_distance got {len(weights)} layer weights for {len(la)} '
                     'gradient leaves.')
  dot = _total(w * jnp.sum(x * y) for w, x, y in zip(weights, la, lb))
  na = _total(w * jnp.sum(x * x) for w, x in zip(weights, la))
  nb = _total(w * jnp.sum(y * y) for w, y in zip(weights, lb))
  return 1.0 - dot / (jnp.sqrt(na) * jnp.sqrt(nb) + 1e-12)


def _total(terms) -> jax.Array:
  """The sum of per-leaf scalars as one reduction that XLA keeps.

  Why: the cosine's gradient scales every gradient entry by these totals. A
  chain of scalar adds (one per leaf: ≈370 on DenseNet-121) is cheap
  elementwise work to XLA, which fuses it into each consumer and recomputes
  it per entry; `jnp.sum` of the stacked terms is rewritten into the same
  chain (XLA turns a reduce of a concatenate into adds). The barrier keeps
  the stack, so the reduction is computed once. DenseNet-121's IG
  value-and-gradient at 32 px, one core (2026-12-04): 1,722 → 111 ms, its
  compile 76 → 36 s (BUILD_NOTES.md, "Throughput").
  """
  return jnp.sum(jax.lax.optimization_barrier(jnp.stack(list(terms))))


def layer_weights(scheme: str | Sequence[float], num_layers: int) -> tuple[float, ...]:
  """Per-layer weights, first layer (nearest the input) first.

  Args:
    scheme: '' (uniform: all 1), 'linear' (n/n, (n−1)/n, …, 1/n: Geiping et
      al.'s and breaching's `weights='linear'`), 'exp' (e⁰, e⁻¹, …, e⁻⁽ⁿ⁻¹⁾:
      their `'exp'`, softmax(n, …, 1) divided by its first entry), or an
      explicit sequence of `num_layers` non-negative weights.
    num_layers: how many parameter tensors the gradient has.

  Raises:
    ConfigError: an unknown scheme, or an explicit sequence of the wrong length
      or with a negative or all-zero entry, naming `attack.layer_weights`.

  >>> layer_weights('linear', 4)
  (1.0, 0.75, 0.5, 0.25)
  """
  if isinstance(scheme, str):
    if scheme not in LAYER_WEIGHTS:
      raise ConfigError(f'attack.layer_weights must be one of {LAYER_WEIGHTS} or a tuple of '
                        f'{num_layers} weights, got {scheme!r}.')
    if scheme == 'linear':
      return tuple((num_layers - i) / num_layers for i in range(num_layers))
    if scheme == 'exp':
      return tuple(math.exp(-i) for i in range(num_layers))
    return (1.0,) * num_layers
  weights = tuple(float(w) for w in scheme)
  if len(weights) != num_layers:
    raise ConfigError(f'attack.layer_weights has {len(weights)} entries but the model has '
                      f'{num_layers} parameter tensors; give one per tensor, input side first.')
  if min(weights) < 0 or max(weights) <= 0:
    raise ConfigError(f'attack.layer_weights must be >= 0 with one > 0, got {weights}.')
  return weights


def weights_by_use(scheme: str | Sequence[float], ranks: Sequence[int]) -> tuple[float, ...]:
  """`layer_weights(scheme)` assigned to leaves by their `order.use_order` ranks.

  >>> weights_by_use('linear', (1, 0))
  (0.5, 1.0)
  """
  per_layer = layer_weights(scheme, len(ranks))
  return tuple(per_layer[r] for r in ranks)


def total_variation(x: jax.Array) -> jax.Array:
  """Anisotropic total variation of NHWC images: mean |neighbour difference|."""
  dx = jnp.mean(jnp.abs(x[:, :, 1:, :] - x[:, :, :-1, :]))
  dy = jnp.mean(jnp.abs(x[:, 1:, :, :] - x[:, :-1, :, :]))
  return dx + dy


def mask_penalty(masks: PyTree, rate: float) -> jax.Array:
  """Σ over sites of |(1 − mean(mask)) − rate|: each site's drop fraction vs p.

  DIA's prior on its relaxed dropout masks (Scheliga et al. 2023).

  >>> float(mask_penalty({'a': jnp.ones((1, 8)), 'b': jnp.array([[1., 0., 1., 1.]])}, 0.25))
  0.25
  """
  return sum(jnp.abs((1.0 - jnp.mean(m)) - rate) for m in jax.tree.leaves(masks))


DISTANCES = {'l2': l2_distance, 'cosine': cosine_distance}
