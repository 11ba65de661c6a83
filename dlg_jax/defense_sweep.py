"""The privacy–utility sweep of issue 5: defenses × strengths × attacks.

For every (defense, strength) of ``config.grid`` this module

1. trains ``config.model`` on ``config.utility``'s data (scikit-learn digits
   by default) with that defense on every step's gradient (`training`) and
   caches the test accuracy in ``workdir/utility/<defense>-<strength>/
   utility.json``, so a resumed sweep never trains twice;
2. runs every attack of ``config.attacks`` against the victims of
   ``config.data`` under the same defense chain, one `sweep.Cell` each
   (resumable through their metrics.json);

then writes ``table.{md,csv,json}`` (defense, strength, attack, mean PSNR,
SSIM, label accuracy, test accuracy, ε) and one privacy–utility plot per
attack, ``tradeoff_<attack>.png`` (attack PSNR against test accuracy, one
line per defense).

Strengths: gaussian and laplacian by *variance* (the DLG paper's axis; the
Laplace scale is sqrt(variance / 2)), quantize by format, prune by sparsity,
dp_sgd by noise multiplier z with clip norm ``config.dp.clip_norm``. For
dp_sgd the attacked client's ``client.accounting`` is set to the utility
run's (q = B/N, T, δ), so the ε in each attack cell's metrics.json is the ε
of the DP-SGD training that the attacked gradient belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import copy
import math
import os
import time
from typing import Any

from absl import logging
import jax
import ml_collections

from dlg_jax import data as data_lib
from dlg_jax import models
from dlg_jax import report
from dlg_jax import sweep
from dlg_jax import training

COLUMNS = ('defense', 'strength', 'attack', 'mean_psnr', 'mean_ssim', 'label_accuracy',
           'test_accuracy', 'epsilon', 'seconds')


def _gaussian(variance):
  return [{'name': 'gaussian', 'variance': float(variance)}]


def _laplacian(variance):
  # Laplace(b) has variance 2 b^2: the same variance as the Gaussian column.
  return [{'name': 'laplacian', 'scale': math.sqrt(float(variance) / 2.0)}]


def _quantize(fmt):
  return [{'name': 'quantize', 'fmt': str(fmt)}]


def _prune(sparsity):
  return [{'name': 'prune', 'sparsity': float(sparsity)}]


# defense name -> (strength -> spec list); dp_sgd also needs the clip norm.
_SPECS = {'gaussian': _gaussian, 'laplacian': _laplacian, 'quantize': _quantize,
          'prune': _prune}
DEFENSES = ('none', *_SPECS, 'dp_sgd')


def specs_for(defense: str, strength: Any, clip_norm: float = 1.0) -> list[dict[str, Any]]:
  """The client's defense chain for one grid point.

  >>> specs_for('laplacian', 2e-2)
  [{'name': 'laplacian', 'scale': 0.1}]
  >>> specs_for('dp_sgd', 1.1, clip_norm=2.0)
  [{'name': 'dp_sgd', 'clip_norm': 2.0, 'noise_multiplier': 1.1}]
  """
  if defense == 'none':
    return []
  if defense == 'dp_sgd':
    return [{'name': 'dp_sgd', 'clip_norm': float(clip_norm),
             'noise_multiplier': float(strength)}]
  if defense not in _SPECS:
    raise ValueError(f'unknown defense {defense!r} in config.grid; choose from {list(DEFENSES)}.')
  return _SPECS[defense](strength)


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[tuple[str, Any]]:
  """(defense, strength) pairs: 'none' first, then the grid in DEFENSES order."""
  unknown = sorted(set(grid) - set(DEFENSES))
  if unknown:
    raise ValueError(f'unknown defense(s) {unknown} in config.grid; choose from '
                     f'{list(DEFENSES)}.')
  points = [('none', None)]
  for defense in DEFENSES[1:]:
    points += [(defense, s) for s in grid.get(defense, None) or ()]
  return points


def point_name(defense: str, strength: Any) -> str:
  """A directory name for a grid point, e.g. 'gaussian-0.0001', 'none'."""
  if strength is None:
    return defense
  return f'{defense}-{strength:g}' if isinstance(strength, float) else f'{defense}-{strength}'


# ----------------------------------------------------------------------------
# Utility: one training run per grid point, cached.
# ----------------------------------------------------------------------------


def _utility_model(config: Mapping[str, Any]) -> models.Model:
  shape = (int(config['data']['size']),) * 2 + (int(config['data']['channels']),)
  return models.build(config['model'], input_shape=shape, num_classes=10)


def utility(config: Mapping[str, Any], specs: list[dict[str, Any]], path: str,
            datasets: dict[str, Any]) -> dict[str, Any]:
  """Test accuracy of `config.model` trained under `specs`; cached in `path`.

  `datasets` is filled lazily with the train/test splits, so a fully cached
  sweep never loads them.
  """
  if os.path.exists(path):
    return sweep.read_record(path)
  u = config['utility']
  if u['data'] != 'digits':
    raise ValueError(f"utility.data must be 'digits' (the offline set), got {u['data']!r}.")
  if not datasets:
    size, channels = int(config['data']['size']), int(config['data']['channels'])
    datasets['train'] = data_lib.load_digits(size=size, channels=channels, split='train')
    datasets['test'] = data_lib.load_digits(size=size, channels=channels, split='test')
  model = _utility_model(config)
  k_init, k_train = jax.random.split(jax.random.key(int(u['seed'])))
  dp = ({'delta': float(u['delta']), 'sampling': u['sampling'], 'accountant': u['accountant']}
        if any(s['name'] == 'dp_sgd' for s in specs) else None)
  variables, history = training.train(
      model, model.init(k_init), datasets['train'], steps=int(u['steps']),
      batch_size=int(u['batch_size']), lr=float(u['lr']), key=k_train, defense=specs, dp=dp,
      chunk=int(u['chunk']))
  record = {'test_accuracy': training.evaluate(model, variables, datasets['test']),
            'train_examples': len(datasets['train'].labels), **history}
  os.makedirs(os.path.dirname(path), exist_ok=True)
  report.write_json(path, record)
  logging.info('utility %s: test accuracy %.4f in %.1f s', specs, record['test_accuracy'],
               history['seconds'])
  return sweep.read_record(path)


# ----------------------------------------------------------------------------
# The sweep.
# ----------------------------------------------------------------------------


def cells(config: Mapping[str, Any], train_examples: int) -> list[sweep.Cell]:
  """One cell per (attack, defense, strength); attacks outermost."""
  cfg = config.to_dict() if hasattr(config, 'to_dict') else copy.deepcopy(dict(config))
  u = cfg['utility']
  out = []
  for attack, attack_cfg in cfg['attacks'].items():
    for defense, strength in grid_points(cfg['grid']):
      cell = ml_collections.ConfigDict({k: v for k, v in cfg.items()
                                        if k in ('seed', 'data', 'model', 'client')})
      cell.attack = ml_collections.ConfigDict(attack_cfg)
      cell.client.defenses = specs_for(defense, strength, cfg['dp']['clip_norm'])
      if defense == 'dp_sgd':
        # The training run's accounting (see the module docstring).
        cell.client.accounting = ml_collections.ConfigDict({
            'sampling_rate': int(u['batch_size']) / train_examples,
            'steps': int(u['steps']), 'delta': float(u['delta']),
            'accountant': u['accountant']})
      out.append(sweep.Cell(f'{attack}-{point_name(defense, strength)}',
                            {'defense': defense, 'strength': strength, 'attack': attack}, cell))
  return out


def run(config: Mapping[str, Any], workdir: str) -> list[dict[str, Any]]:
  """Trains, attacks, tabulates and plots the whole grid (resumable)."""
  cfg = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  if not cfg.get('attacks'):
    raise ValueError('config.attacks is empty; give at least one attack config, e.g. idlg.')
  start = time.perf_counter()
  points = grid_points(cfg['grid'])
  datasets: dict[str, Any] = {}
  utilities = {}
  for defense, strength in points:
    specs = specs_for(defense, strength, cfg['dp']['clip_norm'])
    path = os.path.join(workdir, 'utility', point_name(defense, strength), 'utility.json')
    utilities[(defense, strength)] = utility(cfg, specs, path, datasets)
    print(f'[utility] {point_name(defense, strength)}: test accuracy '
          f'{utilities[(defense, strength)]["test_accuracy"]:.4f}', flush=True)
  train_examples = int(utilities[('none', None)]['train_examples'])

  def extra(cell: sweep.Cell, record: dict[str, Any]) -> dict[str, Any]:
    del record
    u = utilities[(cell.labels['defense'], cell.labels['strength'])]
    return {'test_accuracy': u['test_accuracy'], 'train_epsilon': u.get('epsilon')}

  rows = sweep.run(cells(cfg, train_examples), workdir, extra=extra)
  sweep.write_table(rows, workdir, COLUMNS)
  for attack in cfg['attacks']:
    sweep.plot_lines([r for r in rows if r['attack'] == attack],
                     os.path.join(workdir, f'tradeoff_{attack}.png'), x='test_accuracy',
                     y='mean_psnr', line='defense',
                     title=f'{attack}: attack PSNR vs test accuracy (digits)')
  with open(os.path.join(workdir, 'table.md'), encoding='utf-8') as f:
    print(f.read(), flush=True)
  print(f'defense sweep: {len(rows)} cells in {time.perf_counter() - start:.0f} s '
        f'(cached cells and trainings included)', flush=True)
  return rows
