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

from collections.abc import Mapping
import os
from typing import Any

from dlg_jax.errors import ConfigError
from dlg_jax.sweeps import grid

COLUMNS = ('batch_size', 'victims', 'mean_psnr', 'mean_ssim', 'label_accuracy', 'num_diverged',
           'seconds')
# The sweep's own fields; a cell's experiment config is the rest.
SWEEP_FIELDS = ('sweep', 'batch_sizes', 'total_images')


def cells(config: Mapping[str, Any]) -> list[grid.Cell]:
  """One experiment per batch size in `config.batch_sizes`.

  Raises:
    ConfigError: a batch size that does not divide `total_images`.
  """
  total = int(config['total_images'])
  out = []
  for b in config['batch_sizes']:
    if isinstance(b, bool) or not isinstance(b, int) or b < 1 or total % b:
      raise ConfigError(f'batch_sizes must be positive integers dividing '
                        f'total_images={total}, got {b!r}.')
    cell = grid.cell_config(config, drop=SWEEP_FIELDS)
    cell.client.batch_size = b
    cell.data.num_victims = total // b
    out.append(grid.Cell(f'B={b}', {'batch_size': b, 'victims': total // b,
                                    'attack': cell.attack.name}, cell))
  return out


def run(config: Mapping[str, Any], workdir: str) -> list[dict[str, Any]]:
  """Runs (or resumes) every batch size and writes the table and the plot."""
  config = grid.plain(config)
  rows = grid.run(cells(config), workdir)
  print(grid.write_table(rows, workdir, COLUMNS), flush=True)
  attack, model = config['attack']['name'], config['model']['name']
  grid.plot_lines(rows, os.path.join(workdir, 'psnr_by_batch_size.png'), x='batch_size',
                  y='mean_psnr', line='attack', title=f'{attack} on {model}: PSNR vs batch size',
                  logx=True)
  return rows
