"""FedAvg: K = 4 local SGD steps per victim, attacked by unrolling them.

Each victim (one offline photo, batch size 1) takes 4 full-batch SGD steps at
lr 0.1 on the DLG LeNet and shares (θ0 − θ4)/(4 · 0.1), its weight change in
gradient units. The attacker knows K and lr (the server set them), reads the
label off the update's output layer and runs L-BFGS on the squared L2
distance to the update its dummy image produces through the same 4 steps.

  python launch.py --config=configs/fedavg.py --workdir=runs/fedavg
  python launch.py --config=configs/fedavg.py:smoke --workdir=runs/fedavg_smoke

Threat model: labels recovered, random weights, FedAvg K = 4 (no BatchNorm in the LeNet).
Measured 2026-11-26: mean PSNR 48.41 dB over the 16 photos (min 34.24 dB), labels 16/16.
More: docs/results/batches_fedavg.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import idlg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = idlg.get_config()
  config.client.protocol = 'fedavg'
  config.client.local_steps = 4
  config.client.local_lr = 0.1
  return common.apply_arg(config, arg)
