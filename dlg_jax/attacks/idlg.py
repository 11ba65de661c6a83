"""iDLG (Zhao et al. 2020): DLG with the label read analytically.

The label of a single example is the one output row whose weight gradient has
a negative sum (`labels.idlg_label`); the image is then optimised alone with
the same L-BFGS gradient matching as DLG.

References:
  Zhao, Mopuri, Bilen, "iDLG: Improved Deep Leakage from Gradients", 2020.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax

from dlg_jax.attacks import dlg
from dlg_jax.attacks import solvers
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, ClientUpdate, PyTree

DEFAULTS = {**dlg.DEFAULTS, 'labels': 'idlg', 'init': 'rand'}  # U(0, 1): the iDLG code's


def check_config(config: Mapping[str, Any]) -> None:
  """DLG's checks, with labels read ('idlg') or known, never optimised."""
  if config['labels'] == 'optimize':
    raise ConfigError('iDLG does not optimise labels; use attack.name="dlg" for that, '
                      'or attack.labels="idlg" / "known".')
  dlg.check_config(config)


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """DLG with `labels='idlg'` unless the config says the labels are known."""
  config = solvers.complete(DEFAULTS, config, check_config)
  return dlg.reconstruct(update, model, variables, key, config, progress=progress)
