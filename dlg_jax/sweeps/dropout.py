"""Dropout as a defense, and the attacks that model it: the grid of issue 4.

Two papers disagree, and this sweep puts them side by side. Zheng adds dropout
before a LeNet-5's classifier and finds that DLG/iDLG stop converging as the
rate grows; Scheliga et al. show that the attacker's deterministic model is
the problem and that DIA, which optimises the client's masks, reconstructs
again. Cells are (group, model, rate, attack); each is one `runner.run` with
the model's `dropout_rate` set and, for WIIG, the masks revealed
(`client.reveal_masks`, its threat model).

The config (configs/dropout_sweep.py) holds:
  * `groups`: named row groups, each `models`, `rates`, `attacks`;
  * `models`: name -> model options (the DIA code's MLP and ViT, LeNet-5);
  * `attacks`: name -> attack config (IG, DIA and WIIG share one budget;
    `dia_lbfgs`/`wiig_lbfgs` are their L-BFGS variants for the sigmoid LeNet);
  * `utility`: training settings for the test-accuracy column (Zheng's
    figure 6): each (model, rate) is trained once on scikit-learn's digits
    with dropout active (`utility.measure`, cached in ``workdir/utility``);
    `utility.steps` = 0 leaves the column empty.

Outputs: table.{md,csv,json} (mean MSE, PSNR, SSIM per cell), plot.png (MSE
against rate, one line per model / attack), one plot per model, and every
cell's own report (grids, curves) in its sub-directory.
"""

from __future__ import annotations

from collections.abc import Mapping
import os
from typing import Any

from dlg_jax.errors import ConfigError
from dlg_jax.sweeps import grid
from dlg_jax.sweeps import utility

COLUMNS = ('group', 'model', 'rate', 'attack', 'mean_mse', 'mean_psnr', 'mean_ssim',
           'label_accuracy', 'test_accuracy', 'num_victims', 'seconds')
# The sweep's own fields; a cell's experiment config is the rest.
SWEEP_FIELDS = ('sweep', 'groups', 'models', 'attacks', 'utility')


def _check_group(name: str, group: Mapping[str, Any], config: Mapping[str, Any]) -> None:
  for model in group['models']:
    if model not in config['models']:
      raise ConfigError(f'dropout sweep group {name!r} names model {model!r}; '
                        f'config.models defines {sorted(config["models"])}.')
  for rate in group['rates']:
    if not 0.0 <= float(rate) < 1.0:
      raise ConfigError(f'dropout sweep group {name!r}: rate {rate} is outside [0, 1).')
  for attack in group['attacks']:
    if attack not in config['attacks']:
      raise ConfigError(f'dropout sweep group {name!r} names attack {attack!r}; '
                        f'config.attacks defines {sorted(config["attacks"])}.')


def cells(config: Mapping[str, Any]) -> list[grid.Cell]:
  """One cell per (group, model, rate, attack) of the config's groups."""
  config = grid.plain(config)
  out = []
  for group_name, group in config['groups'].items():
    _check_group(group_name, group, config)
    for model in group['models']:
      for rate in map(float, group['rates']):
        for attack in group['attacks']:
          cell = grid.cell_config(config, drop=SWEEP_FIELDS,
                                  model={**config['models'][model], 'dropout_rate': rate},
                                  attack=config['attacks'][attack])
          cell.client.reveal_masks = cell.attack.name == 'wiig'
          out.append(grid.Cell(
              name=f'{group_name}.{model}.p{rate:g}.{attack}',
              labels={'group': group_name, 'model': model, 'rate': rate, 'attack': attack},
              config=cell))
  return out


def run(config: Mapping[str, Any], workdir: str) -> list[dict[str, Any]]:
  """Runs (or resumes) the grid and writes its table and plots."""
  config = grid.plain(config)

  def extra(cell: grid.Cell, record: Mapping[str, Any]) -> dict[str, Any]:
    del record
    trained = utility.measure(config, workdir, model_name=cell.labels['model'],
                              model=cell.config.model) or {}
    return {'test_accuracy': trained.get('test_accuracy')}

  rows = grid.run(cells(config), workdir, extra=extra)
  print(grid.write_table(rows, workdir, COLUMNS), flush=True)
  grid.plot_lines(rows, os.path.join(workdir, 'plot.png'), x='rate', y='mean_mse',
                  line=('model', 'attack'), title='Reconstruction MSE against the dropout rate')
  for model in dict.fromkeys(r['model'] for r in rows):
    grid.plot_lines([r for r in rows if r['model'] == model],
                    os.path.join(workdir, f'plot_{model}.png'), x='rate', y='mean_mse',
                    line='attack', title=f'{model}: MSE against the dropout rate')
  return rows
