"""iDLG (Zhao et al. 2020): DLG with the label read analytically.

The label of a single example is the one output row whose weight gradient has
a negative sum (`labels.idlg_label`); the image is then optimised alone with
the same L-BFGS gradient matching as DLG.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax

from dlg_jax.attacks import dlg
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, ClientUpdate, PyTree


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """DLG with `labels='idlg'` unless the config says the labels are known."""
  config = dict(config)
  if config.get('labels', 'idlg') == 'optimize':
    raise ValueError('iDLG does not optimise labels; use attack.name="dlg" for that, '
                     'or attack.labels="idlg" / "known".')
  config.setdefault('labels', 'idlg')
  return dlg.attack(update, model, variables, key, config, progress=progress)
