"""Privacy accounting for DP-SGD settings (host-side, `dp_accounting`).

Runs on the host in numpy, outside any jit, as in jax_privacy: the epsilon of
a run is a function of its hyperparameters only, not of the gradients.

References:
  Abadi et al., "Deep Learning with Differential Privacy", CCS 2016
  (https://arxiv.org/abs/1607.00133).
  Mironov, Talwar & Zhang, "Renyi Differential Privacy of the Sampled Gaussian
  Mechanism", 2019 (https://arxiv.org/abs/1908.10530).
  Doroshenko et al., "Connect the Dots: Tighter Discrete Approximations of
  Privacy Loss Distributions", PETS 2022 (https://arxiv.org/abs/2207.04380).
"""

from __future__ import annotations

import math
import operator
from typing import Literal

import dp_accounting
from dp_accounting import pld
from dp_accounting import rdp

from dlg_jax.client.defenses import check_real

ACCOUNTANTS = ('rdp', 'pld')


def dp_sgd_event(
    noise_multiplier: float, sampling_rate: float, steps: int
) -> dp_accounting.DpEvent:
  """T self-compositions of the Poisson-subsampled Gaussian mechanism."""
  return dp_accounting.SelfComposedDpEvent(
      dp_accounting.PoissonSampledDpEvent(
          sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
      steps)


def dp_sgd_epsilon(
    noise_multiplier: float,
    sampling_rate: float,
    steps: int,
    delta: float,
    accountant: Literal['rdp', 'pld'] = 'rdp',
) -> float:
  """The epsilon of DP-SGD with Poisson sampling, for a given delta.

  Add/remove-one neighbours; the noise multiplier z is the noise std divided
  by the clip norm, as in `defenses.dp_sgd`. RDP (default orders) is the
  classic, slightly loose bound; PLD is tighter and slower (about 0.5 s for
  10^4 steps). For z = 1.1, q = 256/60000, T = 10^4, delta = 1e-5: RDP gives
  about 2.16, PLD about 1.98.

  Edge case: ``noise_multiplier == 0`` (clipping without noise) returns
  ``math.inf``, i.e. no guarantee, rather than raising, so a clip-only run can
  still report its epsilon. Note that ``json.dumps`` writes it as
  ``Infinity``.

  Args:
    noise_multiplier: z >= 0.
    sampling_rate: Poisson sampling probability q = B / N, in (0, 1].
    steps: number of DP-SGD steps T, an int >= 1.
    delta: target delta, in (0, 1).
    accountant: ``'rdp'`` or ``'pld'``.

  Returns:
    epsilon, a Python float (``inf`` when z == 0).

  Raises:
    ValueError: an argument outside its range or an unknown accountant.

  Example:
    >>> round(dp_sgd_epsilon(1.1, 256 / 60000, 10_000, 1e-5), 2)
    2.16
  """
  if accountant not in ACCOUNTANTS:
    raise ValueError(
        f'unknown accountant {accountant!r}; choose from {list(ACCOUNTANTS)}.')
  z = check_real('noise_multiplier', noise_multiplier)
  if z < 0:
    raise ValueError(f'noise_multiplier must be >= 0, got {z}.')
  q = check_real('sampling_rate', sampling_rate)
  if not 0 < q <= 1:
    raise ValueError(f'sampling_rate must be in (0, 1], got {q}.')
  if isinstance(steps, bool):
    raise ValueError(f'steps must be an int >= 1, got {steps!r}.')
  try:
    steps = operator.index(steps)
  except TypeError:
    raise ValueError(f'steps must be an int >= 1, got {steps!r}.') from None
  if steps < 1:
    raise ValueError(f'steps must be an int >= 1, got {steps}.')
  delta = check_real('delta', delta)
  if not 0 < delta < 1:
    raise ValueError(f'delta must be in (0, 1), got {delta}.')
  if z == 0:
    return math.inf

  if accountant == 'rdp':
    acc = rdp.RdpAccountant()
  else:
    acc = pld.PLDAccountant()
  acc.compose(dp_sgd_event(z, q, steps))
  return float(acc.get_epsilon(delta))
