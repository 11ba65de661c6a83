"""iDLG (Zhao et al. 2020) on the DLG LeNet, 16 offline photos, batch size 1.

The label is read off the output layer's gradient, then the image alone is
optimised by L-BFGS on the squared L2 gradient distance.

  python launch.py --config=configs/idlg.py --workdir=runs/idlg
  python launch.py --config=configs/idlg.py:smoke --workdir=runs/smoke

Measured (this 2-core CPU): see BUILD_NOTES.md, "Acceptance runs".
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.attack.name = 'idlg'
  config.attack.labels = 'idlg'
  config.attack.init = 'rand'
  if arg == 'smoke':
    common.smoke(config)
  elif arg:
    raise ValueError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config
