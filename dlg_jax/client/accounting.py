"""Privacy accounting for DP-SGD settings (host-side, `dp_accounting`).

Runs on the host in numpy, outside any jit, as in jax_privacy: the epsilon of
a run is a function of its hyperparameters only, not of the gradients.

References:
  Abadi et al., "Deep Learning with Differential Privacy", CCS 2016
  (arXiv:1607.00133).
  Mironov, Talwar & Zhang, "Renyi Differential Privacy of the Sampled Gaussian
  Mechanism", 2019 (arXiv:1908.10530).
  Doroshenko et al., "Connect the Dots: Tighter Discrete Approximations of
  Privacy Loss Distributions", PETS 2022 (arXiv:2207.04380).
"""

from __future__ import annotations

from collections.abc import Mapping
import math
import operator
from typing import Any, Literal

import dp_accounting
from dp_accounting import pld
from dp_accounting import rdp

from dlg_jax.client.defenses import check_real
from dlg_jax.errors import ConfigError

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
    raise ConfigError(
        f'unknown accountant {accountant!r}; choose from {list(ACCOUNTANTS)}.')
  z = check_real('noise_multiplier', noise_multiplier)
  if z < 0:
    raise ConfigError(f'noise_multiplier must be >= 0, got {z}.')
  q = check_real('sampling_rate', sampling_rate)
  if not 0 < q <= 1:
    raise ConfigError(f'sampling_rate must be in (0, 1], got {q}.')
  if isinstance(steps, bool):
    raise ConfigError(f'steps must be an int >= 1, got {steps!r}.')
  try:
    steps = operator.index(steps)
  except TypeError:
    raise ConfigError(f'steps must be an int >= 1, got {steps!r}.') from None
  if steps < 1:
    raise ConfigError(f'steps must be an int >= 1, got {steps}.')
  delta = check_real('delta', delta)
  if not 0 < delta < 1:
    raise ConfigError(f'delta must be in (0, 1), got {delta}.')
  if z == 0:
    return math.inf

  if accountant == 'rdp':
    acc = rdp.RdpAccountant()
  else:
    acc = pld.PLDAccountant()
  acc.compose(dp_sgd_event(z, q, steps))
  return float(acc.get_epsilon(delta))


def dp_sgd_privacy(
    noise_multiplier: float,
    sampling_rate: float,
    steps: int,
    delta: float,
    accountant: Literal['rdp', 'pld'] = 'rdp',
) -> dict[str, float | int | str]:
  """`dp_sgd_epsilon` together with its inputs, as a JSON-ready record.

  Example:
    >>> r = dp_sgd_privacy(1.1, 256 / 60000, 10_000, 1e-5)
    >>> round(r['epsilon'], 2), r['dp_steps'], r['accountant']
    (2.16, 10000, 'rdp')
  """
  epsilon = dp_sgd_epsilon(noise_multiplier, sampling_rate, steps, delta, accountant)
  return {'epsilon': epsilon, 'delta': float(delta),
          'noise_multiplier': float(noise_multiplier),
          'sampling_rate': float(sampling_rate), 'dp_steps': int(steps),
          'accountant': accountant}


# What an experiment accounts for when the config does not say: the one
# gradient the client shares, computed on its whole batch.
DEFAULT_EXPERIMENT_ACCOUNTING = {'sampling_rate': 1.0, 'steps': 1, 'delta': 1e-5,
                                 'accountant': 'rdp'}


def experiment_privacy(client: Mapping[str, Any]) -> dict[str, float | int | str]:
  """The (ε, δ) record of a client config whose defense chain has dp_sgd.

  The dp_sgd spec gives z (``noise_multiplier``); ``client.accounting`` gives
  the accountant's other inputs: ``sampling_rate`` q, ``steps`` T, ``delta``
  and ``accountant``. Its defaults (`DEFAULT_EXPERIMENT_ACCOUNTING`: q = 1,
  T = 1) account for exactly what an experiment shares, one full-batch
  gradient; to state the ε of the training run that gradient belongs to, set
  q = B/N and T to that run's values (configs/defenses.py does).

  Args:
    client: the ``client`` config (``defenses``, optional ``accounting``).

  Returns:
    {} when no stage is dp_sgd, else `dp_sgd_privacy`'s record.

  Raises:
    ValueError: two dp_sgd stages, an unknown ``client.accounting`` field or
      a value out of range.
  """
  stages = [dict(s) for s in client.get('defenses', []) or [] if dict(s).get('name') == 'dp_sgd']
  if not stages:
    return {}
  if len(stages) > 1:
    raise ConfigError('client.defenses has more than one dp_sgd stage; the accountant covers '
                     'one (z, C) per step.')
  options = dict(client.get('accounting', None) or {})
  unknown = sorted(set(options) - set(DEFAULT_EXPERIMENT_ACCOUNTING))
  if unknown:
    raise ConfigError(f'unknown client.accounting field(s) {unknown}; the fields are '
                     f'{sorted(DEFAULT_EXPERIMENT_ACCOUNTING)}.')
  options = {**DEFAULT_EXPERIMENT_ACCOUNTING, **options}
  try:
    return dp_sgd_privacy(stages[0].get('noise_multiplier'), options['sampling_rate'],
                          options['steps'], options['delta'], options['accountant'])
  except ValueError as e:
    raise ConfigError(f'client.accounting / dp_sgd spec: {e}') from None
