"""Read-out of a trapped first dense layer: trap weights or QBI; closed form.

One read-out, two servers: trap weights (server/trap_weights.py) and QBI
(server/qbi.py) both set the first dense layer of an `mlp` so that each row
fires for few inputs; they differ only in how the weights and biases are drawn.

Every row i of the trapped first layer with a non-zero bias gradient gives a
candidate x̂_i = ∇W_i / ∇b_i: the input itself when it alone fired the row,
a mixture when several did. Rows outnumber the batch, so the candidates are
many; B are kept per victim. An input alone in several rows gives the same
vector in each (up to float32 rounding), while a mixture depends on each
row's own gradient weights and is almost never repeated, so the candidates
are grouped (L2 distance below `tolerance`), groups with more rows first
(then larger |∇b|), one candidate per group, until B are kept; blank images
fill the rest. The optimal matching of the metrics pairs them with the truth
and the exact-recovery metric decides which count. The sum of U users'
updates is read the same way (the rows do not care whose input fired them).

Labels are not read (`labels='none'`) unless the client reveals them.

References: Boenisch et al., "When the Curious Abandon Honesty: Federated
Learning Is Not Private", EuroS&P 2023, §4; Nowak et al., "QBI:
Quantile-Based Bias Initialization for Efficient Private Data Reconstruction
in Federated Learning", 2024.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from dlg_jax.attacks import imprint
from dlg_jax.attacks import solvers
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.server import trap_weights as trap_lib
from dlg_jax.types import AttackResult, ClientUpdate, PyTree

DEFAULTS = {
    'labels': 'none',  # none: class 0 for every image | known: revealed
    'tolerance': 1e-3,  # L2 distance under which two rows' candidates are the same input
}


def check_config(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming `attack.labels` or `attack.tolerance`."""
  imprint.check_config(config)
  tol = config['tolerance']
  if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
    raise ConfigError(f'attack.tolerance must be a positive number (L2 distance of the same '
                      f'input read from two rows), got {tol!r}.')


def candidates(kernel_grad: np.ndarray, bias_grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Every row's ∇W_i / ∇b_i (m, d) where ∇b_i ≠ 0 and the result is finite, and |∇b_i|.

  >>> x, y = np.array([1., 2.]), np.array([3., 5.])
  >>> # row 0: x alone (weight 0.5); row 1: x and y (0.5, 0.5); row 2: nobody.
  >>> cands, _ = candidates(np.stack([0.5 * x, 0.5 * x + 0.5 * y, 0 * x], axis=1),
  ...                       np.array([0.5, 1.0, 0.0]))
  >>> cands
  array([[1. , 2. ],
         [2. , 3.5]])
  """
  kernel = np.asarray(kernel_grad, np.float64)
  bias = np.asarray(bias_grad, np.float64)
  scale = np.max(np.abs(bias), initial=0.0)
  hit = np.abs(bias) > 1e-9 * scale if scale > 0 else np.zeros_like(bias, bool)
  cands = kernel[:, hit].T / bias[hit][:, None]
  finite = np.all(np.isfinite(cands), axis=1)
  return cands[finite], np.abs(bias[hit])[finite]


def read_out(kernel_grad: np.ndarray, bias_grad: np.ndarray, count: int,
             tolerance: float = 1e-3) -> np.ndarray:
  """`count` candidate inputs (count, d) from one trapped layer's gradients.

  Args:
    kernel_grad: (d, n) gradient of the rows' weights; bias_grad: (n,).
    count: candidates kept; zeros where there are fewer distinct ones.
    tolerance: L2 distance under which two candidates are one input.

  >>> x, y = np.array([1., 2.]), np.array([3., 5.])
  >>> # rows: x alone (0.5), x and y (0.5, 0.5), y alone (-2), x alone again (0.25)
  >>> kernel = np.stack([0.5 * x, 0.5 * (x + y), -2 * y, 0.25 * x], axis=1)
  >>> read_out(kernel, np.array([0.5, 1.0, -2.0, 0.25]), 3)
  array([[1. , 2. ],
         [3. , 5. ],
         [2. , 3.5]])
  """
  cands, strength = candidates(kernel_grad, bias_grad)
  out = np.zeros((count, cands.shape[1]), np.float64)
  if not len(cands):
    return out
  sq = np.sum(cands ** 2, axis=1)
  same = sq[:, None] + sq[None, :] - 2 * cands @ cands.T < tolerance ** 2
  order = np.lexsort((-strength, -same.sum(axis=1)))  # most rows first, then strongest
  taken = np.zeros(len(cands), bool)
  kept = 0
  for i in order:
    if kept == count:
      break
    if taken[i]:
      continue
    out[kept] = cands[i]
    kept += 1
    taken |= same[i]
  return out


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """B candidates per victim from its trapped layer's gradient (no optimisation).

  `config` is the `attack` section (`DEFAULTS`). B is `update.batch_size`:
  all of a victim's images, over all its users when the update is their sum.
  """
  config = solvers.complete(DEFAULTS, config, check_config)
  del model, variables, key, progress  # closed form: nothing to optimise
  kernel, bias = imprint.planted_gradients(
      trap_lib.layer_gradients, update, 'the trap-weights read-out needs the first dense layer '
      'of an mlp; set server.name="trap_weights" (or "qbi") and model.name="mlp".')
  kernel, bias = np.asarray(kernel), np.asarray(bias)
  count, tol = update.batch_size, float(config['tolerance'])
  cands = np.stack([read_out(k, b, count, tol) for k, b in zip(kernel, bias)])
  return imprint.closed_form_result(cands.astype(np.float32), update, config)
