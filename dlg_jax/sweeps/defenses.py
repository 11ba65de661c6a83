"""The privacy–utility sweep of issue 5: defenses × strengths × attacks.

For every (defense, strength) of ``config.grid`` this module runs every attack
of ``config.attacks`` against the victims of ``config.data`` under that
defense chain, one `grid.Cell` each (resumable through their metrics.json),
and trains ``config.model`` with the same chain on every step's gradient for
the test-accuracy column (`utility.measure`, cached in ``workdir/utility``,
so a resumed sweep never trains twice).

It writes ``table.{md,csv,json}`` (defense, strength, attack, mean PSNR,
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
import math
import os
import time
from typing import Any

from dlg_jax.errors import ConfigError
from dlg_jax.sweeps import grid
from dlg_jax.sweeps import utility

COLUMNS = ('defense', 'strength', 'attack', 'mean_psnr', 'mean_ssim', 'label_accuracy',
           'test_accuracy', 'epsilon', 'seconds')
# The sweep's own fields; a cell's experiment config is the rest.
SWEEP_FIELDS = ('sweep', 'attacks', 'grid', 'dp', 'utility')


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
    raise ConfigError(f'unknown defense {defense!r} in config.grid; choose from '
                      f'{list(DEFENSES)}.')
  return _SPECS[defense](strength)


def grid_points(points: Mapping[str, Sequence[Any]]) -> list[tuple[str, Any]]:
  """(defense, strength) pairs: 'none' first, then the grid in DEFENSES order.

  >>> grid_points({'prune': [0.5], 'gaussian': [1e-3]})
  [('none', None), ('gaussian', 0.001), ('prune', 0.5)]
  """
  unknown = sorted(set(points) - set(DEFENSES))
  if unknown:
    raise ConfigError(f'unknown defense(s) {unknown} in config.grid; choose from '
                      f'{list(DEFENSES)}.')
  out = [('none', None)]
  for defense in DEFENSES[1:]:
    out += [(defense, s) for s in points.get(defense, None) or ()]
  return out


def cells(config: Mapping[str, Any]) -> list[grid.Cell]:
  """One cell per (attack, defense, strength); attacks outermost."""
  config = grid.plain(config)
  u = utility.check(config['utility'])
  out = []
  for attack, attack_config in config['attacks'].items():
    for defense, strength in grid_points(config['grid']):
      cell = grid.cell_config(config, drop=SWEEP_FIELDS, attack=attack_config)
      cell.client.defenses = specs_for(defense, strength, config['dp']['clip_norm'])
      if defense == 'dp_sgd' and int(u['steps']) > 0:
        # The training run's accounting (see the module docstring).
        cell.client.accounting = {
            'sampling_rate': int(u['batch_size']) / utility.train_examples(),
            'steps': int(u['steps']), 'delta': float(u['delta']),
            'accountant': u['accountant']}
      out.append(grid.Cell(grid.slug(attack, defense, strength),
                           {'defense': defense, 'strength': strength, 'attack': attack}, cell))
  return out


def run(config: Mapping[str, Any], workdir: str) -> list[dict[str, Any]]:
  """Attacks, trains, tabulates and plots the whole grid (resumable)."""
  config = grid.plain(config)
  if not config.get('attacks'):
    raise ConfigError('config.attacks is empty; give at least one attack config, e.g. idlg.')
  start = time.perf_counter()

  def extra(cell: grid.Cell, record: Mapping[str, Any]) -> dict[str, Any]:
    del record
    trained = utility.measure(config, workdir, model_name=config['model']['name'],
                              model=cell.config.model, defense=cell.labels['defense'],
                              strength=cell.labels['strength'],
                              specs=cell.config.client.defenses) or {}
    return {'test_accuracy': trained.get('test_accuracy'),
            'train_epsilon': trained.get('epsilon')}

  rows = grid.run(cells(config), workdir, extra=extra)
  print(grid.write_table(rows, workdir, COLUMNS), flush=True)
  for attack in config['attacks']:
    grid.plot_lines([r for r in rows if r['attack'] == attack],
                    os.path.join(workdir, f'tradeoff_{attack}.png'), x='test_accuracy',
                    y='mean_psnr', line='defense',
                    title=f'{attack}: attack PSNR vs test accuracy (digits)')
  print(f'defense sweep: {len(rows)} cells in {time.perf_counter() - start:.0f} s '
        f'(cached cells and trainings included)', flush=True)
  return rows
