"""iDLG (Zhao et al. 2020) on the DLG LeNet, 16 offline photos, batch size 1.

The label is read off the output layer's gradient, then the image alone is
optimised by L-BFGS on the squared L2 gradient distance.

  python launch.py --config=configs/idlg.py --workdir=runs/idlg
  python launch.py --config=configs/idlg.py:smoke --workdir=runs/smoke

Measured 2026-11-25 on the 2-core CPU (2,500 iterations, 1 restart): 16/16
victims above 30 dB (min 34.7, mean 48.6 dB, SSIM 0.998), label accuracy 1.0,
117 s attack, 2 min 17 s wall. On 16 grey LFW faces through data.name=npz:
16/16, mean 78.1 dB, 91 s. Again 2026-11-26 after the compact L-BFGS
direction and the col2im change: 16/16 (min 35.1, mean 48.9 dB), label
accuracy 1.0, 2 min 34 s wall at load 3.5–3.7; session 4 (weights as jit
arguments), quiet machine: 16/16 (min 35.1, mean 48.90 dB), 1 min 59 s wall
(97 s attack). Details: BUILD_NOTES.md, "Acceptance runs".
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.attack.name = 'idlg'
  config.attack.labels = 'idlg'
  config.attack.init = 'rand'
  return common.apply_arg(config, arg)
