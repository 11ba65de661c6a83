"""Attack names -> attack functions, all with one signature.

``attack(update, model, variables, key, config, progress=None) -> AttackResult``
"""

from __future__ import annotations

from typing import Callable

from dlg_jax.attacks import analytic
from dlg_jax.attacks import dia
from dlg_jax.attacks import dlg
from dlg_jax.attacks import idlg
from dlg_jax.attacks import inverting

ATTACKS: dict[str, Callable] = {
    'analytic': analytic.attack,
    'dia': dia.attack,
    'dlg': dlg.attack,
    'idlg': idlg.attack,
    'ig': inverting.attack,
    'wiig': dia.wiig_attack,
}


def get(name: str) -> Callable:
  """The attack called `name`; a ValueError lists the choices on a miss."""
  if name not in ATTACKS:
    raise ValueError(f'unknown attack {name!r}; choose one of {sorted(ATTACKS)}.')
  return ATTACKS[name]
