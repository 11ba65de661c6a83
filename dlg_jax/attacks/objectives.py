"""Gradient distances and image priors that attacks minimise."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlg_jax.types import PyTree


def l2_distance(a: PyTree, b: PyTree) -> jax.Array:
  """Squared Euclidean distance summed over every leaf (DLG's objective).

  References:
    Zhu et al., "Deep Leakage from Gradients", NeurIPS 2019.

  >>> float(l2_distance({'w': jnp.ones(3)}, {'w': jnp.zeros(3)}))
  3.0
  """
  return sum(jnp.sum((x - y) ** 2) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def cosine_distance(a: PyTree, b: PyTree) -> jax.Array:
  """1 − cosine similarity of the two gradients, flattened over all layers.

  References:
    Geiping et al., "Inverting Gradients", NeurIPS 2020.
  """
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  dot = sum(jnp.sum(x * y) for x, y in zip(la, lb))
  na = sum(jnp.sum(x * x) for x in la)
  nb = sum(jnp.sum(y * y) for y in lb)
  return 1.0 - dot / (jnp.sqrt(na) * jnp.sqrt(nb) + 1e-12)


def total_variation(x: jax.Array) -> jax.Array:
  """Anisotropic total variation of NHWC images: mean |neighbour difference|."""
  dx = jnp.mean(jnp.abs(x[:, :, 1:, :] - x[:, :, :-1, :]))
  dy = jnp.mean(jnp.abs(x[:, 1:, :, :] - x[:, :-1, :, :]))
  return dx + dy


DISTANCES = {'l2': l2_distance, 'cosine': cosine_distance}
