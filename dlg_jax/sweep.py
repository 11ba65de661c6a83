"""Grids of experiments: run each cell once, resume, tabulate, plot.

A sweep is a list of `Cell`s, each a full experiment config with a name (its
sub-directory of the sweep's workdir) and labels (its coordinates in the grid,
which become the first columns of its table row). `run` runs
`experiment.run` for every cell whose ``metrics.json`` is missing and reads the
others back, so an interrupted sweep continues where it stopped; every row
comes from the file on disk, so a resumed sweep and a fresh one give the same
rows. `write_table` and `plot_lines` turn rows into ``table.{md,csv,json}`` and
a PNG. Nothing here knows what the grid means: the defense sweep
(`defense_sweep`) and others build cells and choose columns.

`launch` is what ``launch.py`` calls for a config with a ``sweep`` field: it
looks the name up in `SWEEPS` (module paths, imported lazily so that sweep
modules may import this one) and calls that module's ``run(config, workdir)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import csv
import dataclasses
import importlib
import io
import json
import math
import os
import re
from typing import Any

from absl import logging
import ml_collections

from dlg_jax import experiment
from dlg_jax import report

MISSING = '—'
_SAFE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._=+-]*$')

# config.sweep -> module with `run(config, workdir) -> list[dict]`.
SWEEPS: dict[str, str] = {
    'defenses': 'dlg_jax.defense_sweep',
    'dropout': 'dlg_jax.dropout_sweep',
    'batch': 'dlg_jax.batch_sweep',
    'models_study': 'dlg_jax.models_study',
}


@dataclasses.dataclass(frozen=True)
class Cell:
  """One experiment of a sweep.

  Attributes:
    name: its sub-directory of the sweep's workdir; letters, digits and
      ``._=+-``, not starting with a dot.
    labels: its coordinates, e.g. ``{'defense': 'gaussian', 'strength': 1e-4,
      'attack': 'idlg'}``; they lead its table row.
    config: a full experiment config (as for `experiment.run`).
  """
  name: str
  labels: dict[str, Any]
  config: ml_collections.ConfigDict


def _check_cells(cells: Sequence[Cell]) -> None:
  seen = set()
  for cell in cells:
    if not isinstance(cell, Cell):
      raise ValueError(f'a sweep takes Cell records, got {type(cell).__name__}.')
    if not _SAFE_NAME.match(cell.name):
      raise ValueError(f'cell name {cell.name!r} is not a safe directory name; use letters, '
                       'digits and ._=+- (not starting with a dot).')
    if cell.name in seen:
      raise ValueError(f'two cells are named {cell.name!r}; cell names must be unique.')
    seen.add(cell.name)


def read_record(path: str) -> dict[str, Any]:
  """A run's metrics.json (non-finite numbers were written as null)."""
  with open(path) as f:
    return json.load(f)


def run(cells: Sequence[Cell], workdir: str, *,
        extra: Callable[[Cell, dict[str, Any]], dict[str, Any] | None] | None = None,
        runner: Callable[[Any, str], Any] = experiment.run) -> list[dict[str, Any]]:
  """Runs every cell not yet finished and returns one row per cell, in order.

  A cell is finished when ``workdir/<name>/metrics.json`` exists (report.py
  writes it atomically); it is then skipped and its record read back.

  Args:
    cells: the grid; names must be unique and filesystem-safe.
    workdir: the sweep's folder; cell c runs in ``workdir/c.name``.
    extra: optional ``(cell, record) -> dict`` of further columns (e.g. a test
      accuracy computed elsewhere); None or {} adds nothing.
    runner: ``(config, cell_workdir) -> anything`` that writes metrics.json;
      `experiment.run` unless a test or another driver says otherwise.

  Returns:
    Rows ``{**cell.labels, **record['summary'], **extra(cell, record)}``.
  """
  _check_cells(cells)
  os.makedirs(workdir, exist_ok=True)
  rows = []
  for i, cell in enumerate(cells):
    cell_dir = os.path.join(workdir, cell.name)
    path = os.path.join(cell_dir, 'metrics.json')
    if os.path.exists(path):
      logging.info('sweep cell %d/%d %s: done before, read back', i + 1, len(cells), cell.name)
    else:
      logging.info('sweep cell %d/%d %s: running', i + 1, len(cells), cell.name)
      print(f'[sweep {i + 1}/{len(cells)}] {cell.name}', flush=True)
      runner(cell.config, cell_dir)
      if not os.path.exists(path):
        raise RuntimeError(f'cell {cell.name!r} finished without writing {path}.')
    record = read_record(path)
    more = extra(cell, record) if extra is not None else None
    rows.append({**cell.labels, **record.get('summary', {}), **(more or {})})
  return rows


def _is_missing(value: Any) -> bool:
  return value is None or value == '' or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any) -> str:
  """How a table prints a value: 4 significant digits, '—' when missing.

  >>> [format_value(v) for v in (None, 1e-4, 48.612, 'fp16', float('nan'), 3)]
  ['—', '0.0001', '48.61', 'fp16', '—', '3']
  """
  if _is_missing(value):
    return MISSING
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


def write_table(rows: Sequence[Mapping[str, Any]], workdir: str, columns: Sequence[str],
                name: str = 'table') -> None:
  """Writes ``<name>.md``, ``<name>.csv`` (the chosen columns) and ``<name>.json``.

  Markdown rounds to 4 significant digits; CSV keeps full precision; both
  print a missing value (None, '', NaN, or a column the row lacks) as '—'.
  The JSON holds the full rows (every key), non-finite numbers as null.
  """
  if not columns:
    raise ValueError('write_table needs at least one column.')
  os.makedirs(workdir, exist_ok=True)
  lines = ['| ' + ' | '.join(columns) + ' |', '|' + ' --- |' * len(columns)]
  for row in rows:
    lines.append('| ' + ' | '.join(format_value(row.get(c)) for c in columns) + ' |')
  report.write_text(os.path.join(workdir, f'{name}.md'), '\n'.join(lines) + '\n')

  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  writer.writerow(columns)
  for row in rows:
    writer.writerow([MISSING if _is_missing(row.get(c)) else row.get(c) for c in columns])
  report.write_text(os.path.join(workdir, f'{name}.csv'), buf.getvalue())
  report.write_json(os.path.join(workdir, f'{name}.json'), [dict(r) for r in rows])


def _group_key(row: Mapping[str, Any], line: Sequence[str]) -> tuple[Any, ...]:
  return tuple(row.get(c) for c in line)


def plot_lines(rows: Sequence[Mapping[str, Any]], path: str, *, x: str, y: str,
               line: str | Sequence[str], title: str, logx: bool = False) -> None:
  """One line (with markers) per value of `line`, y against x, saved as PNG.

  Rows missing x or y (None, NaN) are left out; each line's points are sorted
  by x. `line` may be a tuple of columns: one line per combination, labelled
  ``a / b``. Lines keep the order in which their first row appears.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  line = (line,) if isinstance(line, str) else tuple(line)
  groups: dict[tuple[Any, ...], list[tuple[float, float]]] = {}
  for row in rows:
    xv, yv = row.get(x), row.get(y)
    if _is_missing(xv) or _is_missing(yv):
      continue
    groups.setdefault(_group_key(row, line), []).append((float(xv), float(yv)))
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  for key, points in groups.items():
    points.sort()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker='o', ms=4, lw=1.2,
            label=' / '.join(format_value(k) for k in key))
  if logx:
    ax.set_xscale('log')
  ax.set_xlabel(x)
  ax.set_ylabel(y)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  if groups:
    ax.legend(fontsize=7, title=' / '.join(line), title_fontsize=7)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  report.save_figure(path, fig)
  plt.close(fig)


def launch(config: Mapping[str, Any], workdir: str) -> list[dict[str, Any]]:
  """Runs the sweep named by ``config.sweep`` (see `SWEEPS`)."""
  name = config['sweep']
  if name not in SWEEPS:
    raise ValueError(f'unknown sweep {name!r} in config.sweep; choose one of {sorted(SWEEPS)}.')
  module = importlib.import_module(SWEEPS[name])
  return module.run(config, workdir)
