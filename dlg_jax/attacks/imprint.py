"""Read-out of a Robbing-the-Fed imprint block (server/imprint.py): closed form.

Bin i of the block fires for the images brighter than its threshold, and all
of an image's bins get the same gradient weight s(x), so for consecutive
bins (the last bin with an empty bin k after it):

  x = (∇W_i − ∇W_{i+1}) / (∇b_i − ∇b_{i+1})

is the image whose brightness lies in [t_i, t_{i+1}) when it is the only one
there, and the s-weighted average of them (a mixture, not a success: the
exact-recovery metric decides) when several share the interval. Each bin
pair with a non-zero bias-gradient difference gives one candidate; the
attack returns the B (batch size, all users' images under aggregation)
candidates with the largest |∇b_i − ∇b_{i+1}|, blank images where there are
fewer, and the Hungarian matching of the metrics pairs them with the truth.
The sum of U users' updates is read the same way: the intervals do not care
whose image fell in them.

Labels are not read (`labels='none'` returns class 0, so label accuracy is
not a claim of this attack) unless the client reveals them ('known').

Reference: Fowl et al., "Robbing the Fed", ICLR 2022, §3.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.attacks import solvers
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.server import imprint as imprint_lib
from dlg_jax.types import AttackResult, ClientUpdate, PyTree

LABEL_MODES = ('none', 'known')
DEFAULTS = {'labels': 'none'}  # none: class 0 for every image | known: revealed


def check_config(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming `attack.labels` for a mode this read-out cannot use."""
  if config['labels'] not in LABEL_MODES:
    raise ConfigError(f'attack.labels for a closed-form read-out (imprint, trap_weights) must '
                      f'be one of {LABEL_MODES}, got {config["labels"]!r}.')


def read_out(kernel_grad: jax.Array, bias_grad: jax.Array, count: int
             ) -> tuple[jax.Array, jax.Array]:
  """`count` candidate inputs (count, d) from one imprint layer's gradients, and their weights.

  Args:
    kernel_grad: (d, k) gradient of the bins' weights; bias_grad: (k,).
    count: candidates wanted; those beyond the non-empty bin pairs are zeros.

  Returns:
    (candidates, |∇b difference| of each), strongest first.

  >>> x, y = jnp.array([1., 2.]), jnp.array([3., 5.])
  >>> # x fires bins 0-1, y fires bin 0 only; weights s(x) = 0.5, s(y) = -2.
  >>> kernel = jnp.stack([0.5 * x - 2 * y, 0.5 * x], axis=1)
  >>> cands, weight = read_out(kernel, jnp.array([0.5 - 2, 0.5]), 3)
  >>> cands
  Array([[3., 5.],
         [1., 2.],
         [0., 0.]], dtype=float32)
  """
  pad = lambda g: jnp.concatenate([g[..., 1:], jnp.zeros_like(g[..., :1])], axis=-1)
  d_kernel, d_bias = kernel_grad - pad(kernel_grad), bias_grad - pad(bias_grad)
  strength = jnp.abs(d_bias)
  take = min(count, strength.shape[0])
  weight, order = jax.lax.top_k(strength, take)
  hit = weight > 0
  cands = jnp.where(hit[:, None], d_kernel[:, order].T / jnp.where(hit, d_bias[order], 1.0)[:, None],
                    0.0)
  missing = count - take
  return (jnp.pad(cands, ((0, missing), (0, 0))), jnp.pad(weight, (0, missing)))


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """B candidates per victim from its imprint layer's gradient (no optimisation).

  `config` is the `attack` section: labels ('none' | 'known'; default
  `DEFAULTS`). B is `update.batch_size`: all of a victim's images, over all
  its users when the update is their sum.
  """
  config = solvers.complete(DEFAULTS, config, check_config)
  del model, variables, key, progress  # closed form: nothing to optimise
  kernel, bias = planted_gradients(
      imprint_lib.layer_gradients, update,
      'the imprint read-out needs the block a malicious server planted; set server.name="imprint".')
  count = update.batch_size
  cands, weight = jax.vmap(lambda k, b: read_out(k, b, count))(kernel, bias)
  del weight  # the strongest pairs come first; the metrics decide which are exact
  return closed_form_result(cands, update, config)


def planted_gradients(layer_gradients, update: ClientUpdate, missing: str):
  """`layer_gradients(update.gradients)`, or a ConfigError saying `missing` (the fix)."""
  try:
    return layer_gradients(update.gradients)
  except (KeyError, TypeError):
    raise ConfigError(missing) from None


def closed_form_result(cands: jax.Array, update: ClientUpdate, config: Mapping[str, Any]
                       ) -> AttackResult:
  """The `AttackResult` of B flat candidates per victim (V, B, d) read out in closed form.

  Non-finite candidates become blank, pixels are clipped to [0, 1]; labels
  are class 0 (`labels='none'`) or the ones the client revealed ('known').
  """
  count = update.batch_size
  images = jnp.asarray(cands).reshape(-1, count, *update.input_shape)
  finite = jnp.all(jnp.isfinite(images), axis=(2, 3, 4))
  images = jnp.clip(jnp.where(finite[..., None, None, None], images, 0.0), 0.0, 1.0)
  num_victims = images.shape[0]
  if config['labels'] == 'known':
    if update.known_labels is None:
      raise ConfigError('attack.labels="known" but the client update reveals no labels; '
                        'set client.reveal_labels=True or use attack.labels="none".')
    labels = jnp.asarray(update.known_labels, jnp.int32)
  else:
    labels = jnp.zeros((num_victims, count), jnp.int32)
  loss = jnp.zeros(num_victims, jnp.float32)  # nothing is matched: no matching loss
  return AttackResult(
      images=images, labels=labels, loss=loss,
      iterations=jnp.zeros(num_victims, jnp.int32),
      evaluations=jnp.zeros(num_victims, jnp.int32),
      diverged=jnp.zeros(num_victims, bool), loss_trace=np.asarray(loss)[:, None],
      snapshots=((0, np.asarray(images)),))
