"""Batch size B = 1, 2, 4, 8 per victim: iDLG-style attack on the DLG LeNet.

The same 16 offline photos (distinct labels) are split into 16 / B victims of
B images each; labels come from the update (iDLG for B = 1, Yin et al. 2021 +
Geng et al. 2021 for B > 1), then L-BFGS matches the shared gradient in
squared L2 (as configs/idlg.py). Reconstructions are matched to the private
images by the optimal assignment before scoring. Writes table.{md,csv,json}
and psnr_by_batch_size.png.

  python launch.py --config=configs/batch.py --workdir=runs/batch
  python launch.py --config=configs/batch.py:smoke --workdir=runs/batch_smoke

Threat model: labels recovered, random weights, FedSGD (no BatchNorm in the LeNet).
Measured 2026-11-26: B = 1 / 2 / 4 / 8 give 48.58 / 19.34 / 12.02 / 10.51 dB, labels exact.
More: docs/results/batches_fedavg.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import idlg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = idlg.get_config()
  config.sweep = 'batch'  # launch.py hands it to dlg_jax.sweeps (sweeps/batch.py)
  config.batch_sizes = (1, 2, 4, 8)
  config.total_images = 16  # victims per cell = total_images / B
  config = common.apply_arg(config, arg)
  if arg == 'smoke':
    config.batch_sizes = (1, 2)
    config.total_images = 4
  return config
