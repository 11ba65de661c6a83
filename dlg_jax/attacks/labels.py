"""Label recovery from the shared gradient of the classifier layer."""

from __future__ import annotations

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp

from dlg_jax.types import PyTree


def classifier_path(params: PyTree, num_classes: int) -> tuple[str, ...]:
  """Path of the output layer's kernel: the 2-D (in, num_classes) kernel.

  Auxiliary heads (Inception's 'aux') are skipped; among several candidates
  the last in key order wins (gradients come back with sorted keys).

  Raises:
    ValueError: no dense output layer with `num_classes` units exists.
  """
  flat = traverse_util.flatten_dict(params)
  candidates = [path for path, leaf in flat.items()
                if path[-1] == 'kernel' and leaf.ndim == 2 and leaf.shape[-1] == num_classes
                and not any('aux' in part.lower() for part in path)]
  if not candidates:
    raise ValueError(
        f'no dense output layer with {num_classes} units found; label recovery '
        'from gradients needs one (or set attack.labels="known").')
  return candidates[-1]


def idlg_label(grads: PyTree, num_classes: int) -> jax.Array:
  """iDLG's label of a single example from the output layer's weight gradient.

  For softmax cross-entropy, dL/dW_k = (p_k − y_k) h: with non-negative
  features h only the true class's row has a negative sum.

  References:
    Zhao, Mopuri, Bilen, "iDLG: Improved Deep Leakage from Gradients", 2020.
  """
  kernel = traverse_util.flatten_dict(grads)[classifier_path(grads, num_classes)]
  return jnp.argmin(jnp.sum(kernel, axis=0)).astype(jnp.int32)
