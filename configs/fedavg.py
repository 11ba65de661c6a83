"""FedAvg: K = 4 local SGD steps per victim, attacked by unrolling them.

Each victim (one offline photo, batch size 1) takes 4 full-batch SGD steps at
lr 0.1 on the DLG LeNet and shares (θ0 − θ4)/(4 · 0.1), its weight change in
gradient units (`dlg_jax/client/protocol.py`). The attacker knows K and lr
(the server set them), reads the label off the update's output layer (iDLG's
sign rule holds for every local step with sigmoid features) and runs L-BFGS
on the squared L2 distance between the update and the one its dummy image
produces through the same 4 unrolled steps.

  python launch.py --config=configs/fedavg.py --workdir=runs/fedavg
  python launch.py --config=configs/fedavg.py:smoke --workdir=runs/fedavg_smoke

Threat model (also in config.json): labels recovered, BatchNorm train mode
(the LeNet has none), random weights, FedAvg K = 4.

Measured 2026-11-26 on the shared 2-core CPU (2,500 iterations, 1 restart):
mean PSNR 48.41 dB over the 16 photos (min 34.24 dB), SSIM 0.998, label
accuracy 1.000; 3,043 s attack wall time under a load average of ≈13 (11 min
of CPU time in all). Details: BUILD_NOTES.md, "Batches and FedAvg (issue 3)".
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
