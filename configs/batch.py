"""Batch size B = 1, 2, 4, 8 per victim: iDLG-style attack on the DLG LeNet.

The same 16 offline photos (distinct labels) are split into 16 / B victims of
B images each; labels come from the update (iDLG for B = 1, Yin et al. 2021 +
Geng et al. 2021 for B > 1: `attacks/labels.py:batch_labels`), then L-BFGS
matches the shared gradient in squared L2 (as configs/idlg.py). Scores match
reconstructions to private images by the optimal assignment first.

  python launch.py --config=configs/batch.py --workdir=runs/batch
  python launch.py --config=configs/batch.py:smoke --workdir=runs/batch_smoke

Writes table.{md,csv,json} and psnr_by_batch_size.png (dlg_jax/batch_sweep.py).
Threat model (in every cell's config.json): labels recovered, BatchNorm
train mode (the LeNet has none), random weights, FedSGD.

Measured 2026-11-26 on the shared 2-core CPU (2,500 iterations, 1 restart):

  | B | victims | mean PSNR | mean SSIM | label accuracy |
  | 1 | 16 | 48.58 dB | 0.998 | 1.000 |
  | 2 | 8 | 19.34 dB | 0.549 | 1.000 |
  | 4 | 4 | 12.02 dB | 0.173 | 1.000 |
  | 8 | 2 | 10.51 dB | 0.109 | 1.000 |

Cells took 9–20 min each under a load average of ≈13 (B = 1 takes ≈2 min
on a quiet machine). Details: BUILD_NOTES.md, "Batches and FedAvg (issue 3)".
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import idlg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = idlg.get_config()
  config.sweep = 'batch'  # launch.py hands configs with this field to dlg_jax.sweep
  config.batch_sizes = (1, 2, 4, 8)
  config.total_images = 16  # victims per cell = total_images / B
  config = common.apply_arg(config, arg)
  if arg == 'smoke':
    config.batch_sizes = (1, 2)
    config.total_images = 4
  return config
