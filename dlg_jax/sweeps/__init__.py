"""Sweeps: grids of experiments, one function per kind, and `launch`.

`launch` is what ``launch.py`` calls for a config with a ``sweep`` field: it
looks the name up in `SWEEPS` and calls that function with the config and
the workdir. Each sweep builds its cells with `grid` (the generic, resumable
runner, tables and plots) and, for a test-accuracy column, `utility`.

  defenses      defenses × strengths × attacks (configs/defenses.py)
  dropout       dropout rates × attacks × models (configs/dropout_sweep.py)
  batch         images per victim (configs/batch.py)
  models_study  one attack, four architectures (configs/models_study.py)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dlg_jax.errors import ConfigError
from dlg_jax.sweeps import batch
from dlg_jax.sweeps import defenses
from dlg_jax.sweeps import dropout
from dlg_jax.sweeps import models_study

Sweep = Callable[[Mapping[str, Any], str], list[dict[str, Any]]]

# config.sweep -> (config, workdir) -> table rows.
SWEEPS: dict[str, Sweep] = {
    'defenses': defenses.run,
    'dropout': dropout.run,
    'batch': batch.run,
    'models_study': models_study.run,
}


def launch(config: Mapping[str, Any], workdir: str) -> list[dict[str, Any]]:
  """Runs the sweep named by ``config.sweep`` and returns its table's rows.

  >>> launch({'sweep': 'nope'}, '/tmp/unused')
  Traceback (most recent call last):
  ...
  dlg_jax.errors.ConfigError: unknown sweep 'nope' in config.sweep; choose one of ['batch', 'defenses', 'dropout', 'models_study'].
  """
  name = config['sweep']
  if name not in SWEEPS:
    raise ConfigError(f'unknown sweep {name!r} in config.sweep; choose one of '
                      f'{sorted(SWEEPS)}.')
  return SWEEPS[name](config, workdir)
