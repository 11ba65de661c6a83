"""The batch-size sweep of issue 3: one attack at B = 1, 2, 4, 8 images per victim.

Every cell attacks the same `total_images` photos, split into
total_images / B victims of B images each, so that a row differs from the
next only in how many images share one update. Labels come from the update
(`attack.labels='idlg'`: iDLG for B = 1, `labels.batch_labels` for B > 1);
reconstructions are matched to the private images (Hungarian, per-pair MSE)
before scoring, and label accuracy compares multisets (`metrics`).

Writes table.{md,csv,json} (batch size, victims, mean PSNR, SSIM, label
accuracy, seconds) and psnr_by_batch_size.png into the workdir; every cell is
its own resumable run in ``workdir/B=<b>``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import ml_collections

from dlg_jax import sweep

COLUMNS = ('batch_size', 'victims', 'mean_psnr', 'mean_ssim', 'label_accuracy', 'num_diverged',
           'seconds')
_SWEEP_FIELDS = ('sweep', 'batch_sizes', 'total_images')


def cells(config: Mapping[str, Any]) -> list[sweep.Cell]:
  """One experiment per batch size in `config.batch_sizes`.

  Raises:
    ValueError: a batch size that does not divide `total_images`.
  """
  total = int(config['total_images'])
  out = []
  for b in config['batch_sizes']:
    if isinstance(b, bool) or not isinstance(b, int) or b < 1 or total % b:
      raise ValueError(f'batch_sizes must be positive integers dividing total_images={total}, '
                       f'got {b!r}.')
    cfg = ml_collections.ConfigDict({k: v for k, v in dict(config).items()
                                     if k not in _SWEEP_FIELDS})
    cfg = ml_collections.ConfigDict(cfg.to_dict())  # deep copy, unlocked
    cfg.client.batch_size = b
    cfg.data.num_victims = total // b
    out.append(sweep.Cell(f'B={b}', {'batch_size': b, 'victims': total // b,
                                     'attack': cfg.attack.name}, cfg))
  return out


def run(config: Mapping[str, Any], workdir: str) -> list[dict[str, Any]]:
  """Runs (or resumes) every batch size and writes the table and the plot."""
  config = ml_collections.ConfigDict(
      config.to_dict() if hasattr(config, 'to_dict') else dict(config))
  rows = sweep.run(cells(config), workdir)
  sweep.write_table(rows, workdir, COLUMNS)
  sweep.plot_lines(rows, os.path.join(workdir, 'psnr_by_batch_size.png'), x='batch_size',
                   y='mean_psnr', line='attack',
                   title=f'{config.attack.name} on {config.model.name}: PSNR vs batch size',
                   logx=True)
  return rows
