"""QBI: quantile-based bias initialisation of the first dense layer (Nowak et al. 2024).

Like trap weights (server/trap_weights.py), no architecture change: the
model must start with a dense layer on the flattened input (the zoo's `mlp`,
layer `dense1`), and only that layer's weights change. Row i gets weights
w_i ~ N(0, 1) (no scaling of the negatives: the bias alone makes the row
rare) and the bias

  b_i = −q_{1−p}(w_i·x),  the (1 − p) quantile of the pre-activation over PUBLIC x,

so w_i·x + b_i > 0 (the row fires through its ReLU) for a fraction p of
inputs drawn like the public ones. Why p = 1/B: a row isolates an input
(exactly one of the B inputs fires it) with probability B·p·(1 − p)^(B−1),
whose derivative B·(1 − p)^(B−2)·(1 − B·p) vanishes at p = 1/B, the
maximum. A row fired by one input x alone gives it back exactly,
x = ∇W_i / ∇b_i; a row fired by several gives their gradient-weighted
mixture, never one of them (attacks/trap_weights.py reads both servers).

Closed form, if the rows' firings were independent across rows and inputs
(random directions on i.i.d. inputs; real images are correlated, so the
rows favour some inputs), with n rows, B inputs and p = 1/B:

  rows that isolate one input:   n·B·p·(1 − p)^(B−1) = n·(1 − 1/B)^(B−1),
  inputs alone in at least one row: B·[1 − (1 − p·(1 − p)^(B−1))^n],

`expected_isolating_rows` and `expected_isolated_inputs`.

Reference:
  Nowak, Bott, Khachaturov, Puppe, Krenzer, Hekalo, "QBI: Quantile-Based
  Bias Initialization for Efficient Private Data Reconstruction in Federated
  Learning", 2024,
  arXiv:2406.18745 (the bias rule; not their PAIRS search).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from dlg_jax.models import Model
from dlg_jax.server import trap_weights
from dlg_jax.types import PyTree

# The trapped layer is the same one: the read-out is trap weights'.
LAYER = trap_weights.LAYER


def isolating_probability(rate: float, batch: int) -> float:
  """Probability that exactly one of `batch` inputs fires a row firing for `rate` of inputs.

  >>> round(isolating_probability(0.01, 100), 4)
  0.3697
  >>> isolating_probability(0.01, 100) > isolating_probability(0.02, 100)
  True
  """
  return batch * rate * (1.0 - rate) ** (batch - 1)


def expected_isolating_rows(rows: int, rate: float, batch: int) -> float:
  """n·B·p·(1 − p)^(B−1): rows fired by exactly one input (independent firings).

  >>> round(expected_isolating_rows(2000, 0.01, 100), 1)
  739.5
  """
  return rows * isolating_probability(rate, batch)


def expected_isolated_inputs(rows: int, rate: float, batch: int) -> float:
  """B·[1 − (1 − p·(1 − p)^(B−1))^n]: inputs alone in some row (independent firings).

  An upper bound in practice: real images are correlated, so the rows'
  firings are too and the same inputs are isolated again and again.

  >>> round(expected_isolated_inputs(2000, 0.01, 100), 2)
  99.94
  """
  alone = rate * (1.0 - rate) ** (batch - 1)
  return batch * (1.0 - (1.0 - alone) ** rows)


def build(model: Model, variables: PyTree, public_images: np.ndarray, key: jax.Array, *,
          rate: float) -> tuple[Model, PyTree]:
  """The same model, its first layer's weights N(0, 1) and its biases quantile-based.

  Args:
    public_images: (N, H, W, C) images the server may see (not the victims');
      each row's bias is minus the (1 − rate) quantile of its pre-activation on them.
    key: draws the N(0, 1) weights.
    rate: p, the fraction of public inputs each row fires for (1/B is best).
  """
  return trap_weights.build(model, variables, public_images, key, scale=1.0, rate=rate,
                            server='qbi', sigma=1.0)


def describe(config: Mapping[str, Any]) -> str:
  """The server's change in words, for the report's threat model."""
  return (f'sets QBI weights in the first dense layer (N(0, 1) rows, each bias the quantile '
          f'that fires it for {config["trap_rate"]} of public inputs: {config["public"]})')
