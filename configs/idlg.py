"""iDLG (Zhao et al. 2020) on the DLG LeNet, 16 offline photos, batch size 1.

The label is read off the output layer's gradient, then the image alone is
optimised by L-BFGS on the squared L2 gradient distance.

  python launch.py --config=configs/idlg.py --workdir=runs/idlg
  python launch.py --config=configs/idlg.py:smoke --workdir=runs/smoke
  python launch.py --config=configs/idlg.py --config.attack.name=analytic --config.model.name=mlp

Threat model: labels recovered (private to the client), random weights, FedSGD.
Measured 2026-12-03 (f2234eb): 16/16 victims ≥ 30 dB (lowest 35.0), 1.37 s per victim on one core
(benchmarks/dlg_time_to_result.py; the DLG code: 9.41 s per image, 4/16 recovered).
More (LFW faces, the analytic inversion, timings): docs/results/dlg_idlg.md.
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()  # its attack is iDLG with the defaults: registry.defaults('idlg')
  common.stop_when_recovered(config.attack)
  return common.apply_arg(config, arg)
