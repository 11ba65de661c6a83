"""Attack names -> attacks: each one's run function, its check and its defaults.

Every `run` has one signature,
``run(update, model, variables, key, config, progress=None) -> AttackResult``,
and fills a partial config from the attack's defaults itself. `complete` does
the same without a model or data, so that a run can reject a bad attack field
before anything heavy happens:

>>> complete({'name': 'idlg', 'steps': 10})['linesearch']
'backtracking'
>>> complete({'name': 'idlg', 'linesearch': 'zom'})
Traceback (most recent call last):
dlg_jax.errors.ConfigError: attack.linesearch must be one of ('backtracking', 'zoom'), got 'zom'.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from dlg_jax.attacks import analytic
from dlg_jax.attacks import dia
from dlg_jax.attacks import dlg
from dlg_jax.attacks import idlg
from dlg_jax.attacks import imprint
from dlg_jax.attacks import inverting
from dlg_jax.attacks import solvers
from dlg_jax.attacks import trap_weights
from dlg_jax.errors import ConfigError


class Attack(NamedTuple):
  """One attack of the registry."""
  name: str
  run: Callable  # (update, model, variables, key, config, progress=None) -> AttackResult
  check: Callable  # (config: Mapping) -> None, raises ValueError naming the field and its choices
  # (a `ConfigError`, which launch.py prints as one line)
  defaults: Mapping[str, Any]  # every field the attack reads, with its default (copy: `defaults`)


def _attack(name: str, run: Callable, check: Callable, defaults: Mapping[str, Any]) -> Attack:
  return Attack(name, run, check, {'name': name, **defaults})


ATTACKS: dict[str, Attack] = {
    attack.name: attack for attack in (
        _attack('analytic', analytic.attack, analytic.check_config, analytic.DEFAULTS),
        _attack('dia', dia.attack, dia.check_config, dia.DEFAULTS),
        _attack('dlg', dlg.attack, dlg.check_config, dlg.DEFAULTS),
        _attack('idlg', idlg.attack, idlg.check_config, idlg.DEFAULTS),
        _attack('ig', inverting.attack, inverting.check_config, inverting.DEFAULTS),
        _attack('imprint', imprint.attack, imprint.check_config, imprint.DEFAULTS),
        _attack('trap_weights', trap_weights.attack, trap_weights.check_config,
                trap_weights.DEFAULTS),
        _attack('wiig', dia.wiig_attack, dia.check_config, dia.DEFAULTS),
    )
}


def get(name: str) -> Attack:
  """The attack called `name`; a ConfigError (a ValueError) lists the choices on a miss.

  >>> get('ig').defaults['schedule']
  'multistep'
  """
  if name not in ATTACKS:
    raise ConfigError(f'unknown attack {name!r}; choose one of {sorted(ATTACKS)}.')
  return ATTACKS[name]


def defaults(name: str) -> dict[str, Any]:
  """A fresh copy of the defaults of attack `name`, including 'name'.

  >>> defaults('dlg')['labels'], defaults('idlg')['labels']
  ('optimize', 'idlg')
  """
  return dict(get(name).defaults)


def complete(config: Mapping[str, Any]) -> dict[str, Any]:
  """The defaults of `config['name']` overlaid by `config`, checked; a new dict.

  Cheap: needs no model and no data. Fields the attack does not read are kept
  (a sweep may switch `name` over one section).

  Raises:
    ConfigError: (a ValueError) an unknown name, or a bad field, naming it and
      its choices.
  """
  attack = get(config.get('name', ''))
  return solvers.complete(attack.defaults, config, attack.check)
