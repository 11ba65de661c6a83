"""Trap weights: a malicious server that only changes the first layer's weights.

No architecture change: the model must start with a dense layer on the
flattened input (the zoo's `mlp`, layer `dense1`). Every row i of that
layer (column i of the flax kernel) gets weights drawn from N(0, σ) whose
negative entries are multiplied by `scale` s > 1, so that on non-negative
pixels the pre-activation w_i·x + b_i is negative for most inputs: the row
is a "trap" that only a few inputs of a batch switch on (ReLU > 0). The
server also chooses the bias: b_i = −(the (1 − rate) quantile of w_i·x over
PUBLIC images), so each row fires for about a fraction `rate` of inputs
(rate = 1/B maximises the chance that exactly one of B inputs fires it).
With ReLU, a row's gradients are

  ∇W_i = Σ_{x fires i} g_i(x) x,   ∇b_i = Σ_{x fires i} g_i(x),

so ∇W_i / ∇b_i is x itself when x alone fires row i, and a mixture when
several do (attacks/trap_weights.py reads them out). The rest of the model
keeps the weights the run built.

Reference:
  Boenisch, Dziedzic, Schuster, Shamsabadi, Shumailov, Papernot, "When the
  Curious Abandon Honesty: Federated Learning Is Not Private", EuroS&P 2023,
  arXiv:2112.02918 (§4, trap weights).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.types import PyTree

# The first dense layer of the zoo's `mlp` (models/mlp.py): the trapped layer.
LAYER = 'dense1'


def trap_kernel(key: jax.Array, inputs: int, rows: int, scale: float,
                sigma: float = 0.5) -> np.ndarray:
  """(inputs, rows) kernel: N(0, σ) draws, the negative ones multiplied by `scale`.

  >>> k = trap_kernel(jax.random.key(0), 1000, 4, 2.0)
  >>> bool(np.all(k.mean(axis=0) < 0)), k.shape
  (True, (1000, 4))
  """
  kernel = np.asarray(jax.random.normal(key, (inputs, rows), jnp.float32), np.float64) * sigma
  return np.where(kernel < 0, kernel * scale, kernel)


def trap_bias(kernel: np.ndarray, public: np.ndarray, rate: float) -> np.ndarray:
  """(rows,) biases: each row fires for a fraction `rate` of the public inputs (N, d).

  >>> public = np.linspace(0, 1, 101)[:, None]
  >>> trap_bias(np.array([[1.0]]), public, 0.1)
  array([-0.9])
  """
  pre = np.asarray(public, np.float64) @ kernel
  return -np.quantile(pre, 1.0 - rate, axis=0)


def layer_kernel(variables: PyTree, size: int, server: str = 'trap_weights'
                 ) -> tuple[np.ndarray, np.ndarray]:
  """The first layer's (kernel (d, n), bias (n,)); ConfigError naming `server` if none."""
  layer = dict(variables.get('params', {})).get(LAYER)
  if layer is None or 'bias' not in layer or layer['kernel'].shape[0] != size:
    raise ConfigError(f'server.name="{server}" traps the first dense layer of the input; '
                      'set model.name="mlp" (with biases: use_bias=True).')
  return layer['kernel'], layer['bias']


def build(model: Model, variables: PyTree, public_images: np.ndarray, key: jax.Array, *,
          scale: float, rate: float, server: str = 'trap_weights',
          **kernel_options: float) -> tuple[Model, PyTree]:
  """The same model, its first layer's weights replaced by trap weights.

  `server` names the config in errors; `kernel_options` go to `trap_kernel`
  (QBI, server/qbi.py, is this layer with scale 1 and N(0, 1) rows).
  """
  size = int(np.prod(model.input_shape))
  kernel, _ = layer_kernel(variables, size, server=server)
  trap = trap_kernel(key, size, int(kernel.shape[1]), scale, **kernel_options)
  bias = trap_bias(trap, np.asarray(public_images).reshape(len(public_images), -1), rate)
  params = dict(variables['params'])
  params[LAYER] = {**dict(params[LAYER]), 'kernel': jnp.asarray(trap, jnp.float32),
                   'bias': jnp.asarray(bias, jnp.float32)}
  return model, {**dict(variables), 'params': params}


def layer_gradients(grads: PyTree) -> tuple[jax.Array, jax.Array]:
  """(kernel (…, d, n), bias (…, n)) gradients of the trapped layer, or KeyError."""
  return grads[LAYER]['kernel'], grads[LAYER]['bias']


def describe(config: Mapping[str, Any]) -> str:
  """The server's change in words, for the report's threat model."""
  return (f'sets trap weights in the first dense layer (negatives ×{config["trap_scale"]}, each '
          f'row firing for {config["trap_rate"]} of public inputs: {config["public"]})')
