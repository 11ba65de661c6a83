"""DLG (Zhu et al. 2019) on its LeNet, 16 offline photos, batch size 1.

Dummy image (N(0,1), as in the DLG code) and dummy label logits are optimised
together by L-BFGS on the squared L2 distance between gradients.

  python launch.py --config=configs/dlg.py --workdir=runs/dlg
  python launch.py --config=configs/dlg.py:smoke --workdir=runs/smoke

Measured (this 2-core CPU): see BUILD_NOTES.md, "Acceptance runs".
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.attack.name = 'dlg'
  config.attack.labels = 'optimize'
  config.attack.init = 'randn'
  # DLG's soft-label optimisation fails on some initialisations (the paper's
  # known failure); two restarts, lowest matching loss kept.
  config.attack.restarts = 2
  if arg == 'smoke':
    common.smoke(config)
  elif arg:
    raise ValueError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config
