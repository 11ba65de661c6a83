"""Closed-form inversion of a fully connected layer that sees the input.

For y = x W + b, the shared gradients are dL/dW = x ⊗ dL/dy and dL/db = dL/dy,
so every unit i with dL/db_i ≠ 0 gives x = dL/dW[:, i] / dL/db_i. We take the
least-squares combination over all units, x = Σ_i dW[:, i] db_i / Σ_i db_i²,
which is exact for one example and robust to units with tiny gradients. With
a batch (B > 1) the gradients mix the examples and this recovers only their
gradient-weighted average.

References:
  Phong et al., "Privacy-preserving deep learning via additively homomorphic
  encryption", 2018; Geiping et al., "Inverting Gradients", NeurIPS 2020, §4
  ("access to any fully-connected layer allows inversion").
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.attacks import labels as labels_lib
from dlg_jax.attacks import solvers
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, ClientUpdate, PyTree


def input_layer(grads: PyTree, input_size: int) -> tuple[str, ...]:
  """Path of the dense layer whose kernel reads the flattened input.

  Raises:
    ConfigError: no dense layer with a bias takes all `input_size` inputs.
  """
  flat = traverse_util.flatten_dict(grads)
  for path, leaf in flat.items():
    if (path[-1] == 'kernel' and leaf.ndim == 2 and leaf.shape[0] == input_size
        and path[:-1] + ('bias',) in flat):
      return path[:-1]
  raise ConfigError('the analytic attack needs a dense layer with a bias on the flattened '
                    f'input ({input_size} features), e.g. model.name="mlp"; none was found.')


def invert_dense(kernel_grad: jax.Array, bias_grad: jax.Array) -> jax.Array:
  """The input of a dense layer from its weight and bias gradients (B = 1).

  >>> x = jnp.array([1., 2., 3.]); d = jnp.array([0.5, -2.])
  >>> invert_dense(jnp.outer(x, d), d)
  Array([1., 2., 3.], dtype=float32)
  """
  return kernel_grad @ bias_grad / jnp.sum(bias_grad ** 2)


LABEL_MODES = ('idlg', 'known')
DEFAULTS = {'labels': 'idlg'}  # idlg: read off the output layer | known: revealed


def check_config(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming `attack.labels` for a mode the closed form cannot use."""
  if config['labels'] not in LABEL_MODES:
    raise ConfigError(f'attack.labels for the analytic inversion must be one of {LABEL_MODES}, '
                      f'got {config["labels"]!r}.')


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """Recovers each victim's single image exactly from its first dense layer.

  Args:
    config: `attack` config: labels ('idlg' | 'known'; default `DEFAULTS`).
  """
  del variables, key, progress  # closed form: nothing to optimise
  config = solvers.complete(DEFAULTS, config, check_config)
  if update.batch_size != 1:
    raise ConfigError(f'the analytic inversion recovers one image per gradient; the batch size '
                      f'is {update.batch_size}. Use an optimisation attack for batches.')
  labels = labels_lib.recover_labels(update, config['labels'], model=model)
  size = int(np.prod(update.input_shape))
  layer = input_layer(jax.tree.map(lambda g: g[0], update.gradients), size)
  flat = traverse_util.flatten_dict(update.gradients)
  kernel, bias = flat[layer + ('kernel',)], flat[layer + ('bias',)]
  x = jax.vmap(invert_dense)(kernel, bias)
  residual = jnp.sum((kernel - x[:, :, None] * bias[:, None, :]) ** 2, axis=(1, 2))
  images = x.reshape(-1, 1, *update.input_shape)
  finite = jnp.all(jnp.isfinite(images), axis=(1, 2, 3, 4))
  images = jnp.clip(jnp.where(finite[:, None, None, None, None], images, 0.0), 0.0, 1.0)
  num_victims = images.shape[0]
  return AttackResult(
      images=images, labels=labels.astype(jnp.int32), loss=residual,
      iterations=jnp.zeros(num_victims, jnp.int32), evaluations=jnp.zeros(num_victims, jnp.int32),
      diverged=~finite, loss_trace=np.asarray(residual)[:, None],
      snapshots=((0, np.asarray(images)),))
