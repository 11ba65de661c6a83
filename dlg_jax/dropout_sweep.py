"""Dropout as a defense, and the attacks that model it: the grid of issue 4.

Two papers disagree, and this sweep puts them side by side. Zheng adds dropout
before a LeNet-5's classifier and finds that DLG/iDLG stop converging as the
rate grows; Scheliga et al. show that the attacker's deterministic model is
the problem and that DIA, which optimises the client's masks, reconstructs
again. Cells are (group, model, rate, attack); each is one `experiment.run`
with the model's `dropout_rate` set and, for WIIG, the masks revealed
(`client.reveal_masks`, its threat model).

The config (configs/dropout_sweep.py) holds:
  * `groups`: named row groups, each `models`, `rates`, `attacks`;
  * `models`: name -> model options (the DIA code's MLP and ViT, LeNet-5);
  * `attacks`: name -> attack config (IG, DIA and WIIG share one budget;
    `dia_lbfgs`/`wiig_lbfgs` are their L-BFGS variants for the sigmoid LeNet);
  * `utility`: training settings for the test-accuracy column (Zheng's
    figure 6): each (model, rate) is trained once on scikit-learn's digits
    with dropout active and cached in ``workdir/utility``; `utility.steps`
    = 0 leaves the column empty.

Outputs: table.{md,csv,json} (mean MSE, PSNR, SSIM per cell), plot.png (MSE
against rate, one line per model / attack), one plot per model, and every
cell's own report (grids, curves) in its sub-directory.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import ml_collections

from dlg_jax import data as data_lib
from dlg_jax import models
from dlg_jax import report
from dlg_jax import sweep
from dlg_jax import training

COLUMNS = ('group', 'model', 'rate', 'attack', 'mean_mse', 'mean_psnr', 'mean_ssim',
           'label_accuracy', 'test_accuracy', 'num_victims', 'seconds')


def _rate_name(rate: float) -> str:
  return f'{rate:g}'


def cells(config: ml_collections.ConfigDict) -> list[sweep.Cell]:
  """One cell per (group, model, rate, attack) of the config's groups."""
  out = []
  for group_name, group in config.groups.items():
    for model_name in group.models:
      if model_name not in config.models:
        raise ValueError(f'dropout sweep group {group_name!r} names model {model_name!r}; '
                         f'config.models defines {sorted(config.models)}.')
      for rate in group.rates:
        if not 0.0 <= float(rate) < 1.0:
          raise ValueError(f'dropout sweep group {group_name!r}: rate {rate} is outside [0, 1).')
        for attack_name in group.attacks:
          if attack_name not in config.attacks:
            raise ValueError(f'dropout sweep group {group_name!r} names attack '
                             f'{attack_name!r}; config.attacks defines {sorted(config.attacks)}.')
          cfg = ml_collections.ConfigDict({
              'seed': config.seed,
              'data': config.data.to_dict(),  # to_dict copies
              'model': {**config.models[model_name].to_dict(), 'dropout_rate': float(rate)},
              'client': {**config.client.to_dict(),
                         'reveal_masks': config.attacks[attack_name].name == 'wiig'},
              'attack': config.attacks[attack_name].to_dict(),
          })
          out.append(sweep.Cell(
              name=f'{group_name}.{model_name}.p{_rate_name(float(rate))}.{attack_name}',
              labels={'group': group_name, 'model': model_name, 'rate': float(rate),
                      'attack': attack_name},
              config=cfg))
  return out


def test_accuracy(config: ml_collections.ConfigDict, model_name: str, rate: float,
                  workdir: str) -> float | None:
  """Digits test accuracy of `model_name` trained with dropout `rate` (cached)."""
  utility = config.utility
  if int(utility.steps) <= 0:
    return None
  path = os.path.join(workdir, 'utility', f'{model_name}.p{_rate_name(rate)}.json')
  if os.path.exists(path):
    return sweep.read_record(path)['test_accuracy']
  size, channels = int(config.data.size), int(config.data.channels)
  train_set = data_lib.load_digits(size=size, channels=channels, split='train')
  test_set = data_lib.load_digits(size=size, channels=channels, split='test')
  model = models.build({**config.models[model_name].to_dict(), 'dropout_rate': rate},
                       input_shape=train_set.images.shape[1:], num_classes=train_set.num_classes)
  key = jax.random.key(int(config.seed))
  k_init, k_train = jax.random.split(key)
  variables, _ = training.train(model, model.init(k_init), train_set, steps=int(utility.steps),
                                batch_size=int(utility.batch_size), lr=float(utility.lr),
                                key=k_train)
  accuracy = float(training.evaluate(model, variables, test_set))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  report.write_json(path, {'model': model_name, 'rate': rate, 'test_accuracy': accuracy,
                           'steps': int(utility.steps), 'batch_size': int(utility.batch_size),
                           'lr': float(utility.lr), 'data': 'digits'})
  return accuracy


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Runs (or resumes) the grid and writes its table and plots."""
  grid = cells(config)
  accuracy: dict[tuple[str, float], float | None] = {}

  def extra(cell: sweep.Cell, record: Mapping[str, Any]) -> dict[str, Any]:
    del record
    key = (cell.labels['model'], cell.labels['rate'])
    if key not in accuracy:
      accuracy[key] = test_accuracy(config, *key, workdir)
    return {'test_accuracy': accuracy[key]}

  rows = sweep.run(grid, workdir, extra=extra)
  sweep.write_table(rows, workdir, COLUMNS)
  sweep.plot_lines(rows, os.path.join(workdir, 'plot.png'), x='rate', y='mean_mse',
                   line=('model', 'attack'), title='Reconstruction MSE against the dropout rate')
  for model_name in dict.fromkeys(r['model'] for r in rows):
    sweep.plot_lines([r for r in rows if r['model'] == model_name],
                     os.path.join(workdir, f'plot_{model_name}.png'), x='rate', y='mean_mse',
                     line='attack', title=f'{model_name}: MSE against the dropout rate')
  with open(os.path.join(workdir, 'table.md')) as f:
    print(f.read(), flush=True)
  return rows
