"""The privacy–utility sweep of issue 5: defenses × strengths × attacks.

For every (defense, strength) of ``config.grid`` this module runs every attack
of ``config.attacks`` against the victims of ``config.data`` under that
defense chain, one `grid.Cell` each (resumable through their metrics.json),
and trains ``config.model`` with the same chain on every step's gradient for
the test-accuracy column (`utility.measure`, cached in ``workdir/utility``,
so a resumed sweep never trains twice).

An entry of ``config.attacks`` holds its attack's fields and, optionally,
the ``server``, ``client`` and ``data`` fields its cells need (`SECTIONS`),
e.g. the malicious server's imprint read-out: ``{'name': 'imprint', 'server':
{'name': 'imprint', 'bins': 32}, 'client': {'batch_size': 4}}``; `grid.cell_config`
overlays them on the sweep's sections for that attack's cells only. For the
entry named ``imprint``, ``config.imprint_batches`` and ``config.imprint_users``
add undefended rows (defense 'none') at other client batch sizes and user
counts: larger batches and secure aggregation over more users as defenses.

It writes ``table.{md,csv,json}`` (defense, strength, attack, the client's
batch size and users, mean PSNR, SSIM, label accuracy, exact recovery — '—'
in a cell whose metrics.json predates it —, test accuracy, ε) and one privacy–utility
plot per attack, ``tradeoff_<attack>.png`` (attack PSNR, or exact recall for
an entry with a malicious server, against test accuracy; one line per defense,
and per client setting for exact recall).

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

COLUMNS = ('defense', 'strength', 'attack', 'batch_size', 'users', 'mean_psnr', 'mean_ssim',
           'label_accuracy', 'mean_exact_recovered', 'exact_recall', 'test_accuracy', 'epsilon',
           'seconds')
# The sweep's own fields; a cell's experiment config is the rest.
SWEEP_FIELDS = ('sweep', 'attacks', 'grid', 'dp', 'utility', 'imprint_batches', 'imprint_users')
# Sections an entry of config.attacks may set for its own cells.
SECTIONS = ('server', 'client', 'data')


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


def split_entry(attack: str, entry: Mapping[str, Any]
                ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
  """An entry of config.attacks as (attack fields, its own `SECTIONS` settings).

  >>> split_entry('imprint', {'name': 'imprint', 'server': {'name': 'imprint'}})
  ({'name': 'imprint'}, {'server': {'name': 'imprint'}})
  >>> split_entry('x', {'name': 'idlg', 'client': {'defenses': []}})
  Traceback (most recent call last):
  ...
  dlg_jax.errors.ConfigError: config.attacks.x.client may not set ['defenses']: the grid sets them.
  """
  fields = dict(grid.plain(entry))
  sections = {name: dict(fields.pop(name)) for name in SECTIONS if name in fields}
  fixed = sorted({'defenses', 'accounting'} & set(sections.get('client', {})))
  if fixed:
    raise ConfigError(f'config.attacks.{attack}.client may not set {fixed}: the grid sets them.')
  return fields, sections


_TAGS = {'batch_size': 'B', 'users': 'U'}  # in the cell names: imprint-none-B16


def _client_points(config: Mapping[str, Any], attack: str) -> list[tuple[str, int]]:
  """The imprint entry's extra undefended rows: ('batch_size' | 'users', value)."""
  if attack != 'imprint':
    return []
  return ([('batch_size', int(b)) for b in config.get('imprint_batches') or ()]
          + [('users', int(u)) for u in config.get('imprint_users') or ()])


def cells(config: Mapping[str, Any]) -> list[grid.Cell]:
  """One cell per (attack, defense, strength), then the imprint rows; attacks outermost."""
  config = grid.plain(config)
  u = utility.check(config['utility'])
  out = []
  for attack, entry in config['attacks'].items():
    attack_config, sections = split_entry(attack, entry)
    points = [(d, s, None) for d, s in grid_points(config['grid'])]
    points += [('none', None, p) for p in _client_points(config, attack)]
    for defense, strength, client_point in points:
      cell = grid.cell_config(config, drop=SWEEP_FIELDS, merge=sections, attack=attack_config)
      name = grid.slug(attack, defense, strength)
      if client_point is not None:
        cell.client[client_point[0]] = client_point[1]
        name = grid.slug(name, f'{_TAGS[client_point[0]]}{client_point[1]}')
      cell.client.defenses = specs_for(defense, strength, config['dp']['clip_norm'])
      if defense == 'dp_sgd' and int(u['steps']) > 0:
        # The training run's accounting (see the module docstring).
        cell.client.accounting = {
            'sampling_rate': int(u['batch_size']) / utility.train_examples(),
            'steps': int(u['steps']), 'delta': float(u['delta']),
            'accountant': u['accountant']}
      out.append(grid.Cell(name, {'defense': defense, 'strength': strength, 'attack': attack,
                                  'batch_size': int(cell.client.batch_size),
                                  'users': int(cell.client.get('users', 1))}, cell))
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
    # A malicious server's read-out is judged by exact recovery, the others by PSNR.
    server = split_entry(attack, config['attacks'][attack])[1].get('server', {})
    exact = server.get('name', 'honest') != 'honest'
    grid.plot_lines([r for r in rows if r['attack'] == attack],
                    os.path.join(workdir, f'tradeoff_{attack}.png'), x='test_accuracy',
                    y='exact_recall' if exact else 'mean_psnr',
                    line=('defense', 'batch_size', 'users') if exact else 'defense',
                    title=f'{attack}: {"exact recall" if exact else "attack PSNR"} vs test '
                          'accuracy (digits)')
  print(f'defense sweep: {len(rows)} cells in {time.perf_counter() - start:.0f} s '
        f'(cached cells and trainings included)', flush=True)
  return rows
