"""Grids of experiments: derive each cell's config, run it once, resume, tabulate, plot.

A sweep is a list of `Cell`s, each a full experiment config with a name (its
sub-directory of the sweep's workdir) and labels (its coordinates in the grid,
which become the first columns of its table row). `cell_config` is the one way
a sweep derives a cell's config from its own. `run` runs `runner.run` for
every cell whose ``metrics.json`` is missing and reads the others back, so an
interrupted sweep continues where it stopped; every row comes from the file on
disk, so a resumed sweep and a fresh one give the same rows. `write_table` and
`plot_lines` turn rows into ``table.{md,csv,json}`` and a PNG.

Nothing here knows what a grid means: the sweeps of this package build the
cells and choose the columns, and this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
import copy
import csv
import dataclasses
import io
import json
import math
import os
import re
from typing import Any

from absl import logging
import ml_collections

from dlg_jax import report
from dlg_jax import runner as runner_lib
from dlg_jax.errors import ConfigError

MISSING = '—'
_SAFE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._=+-]*$')

Row = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Cell:
  """One experiment of a sweep.

  Attributes:
    name: its sub-directory of the sweep's workdir; letters, digits and
      ``._=+-``, not starting with a dot.
    labels: its coordinates, e.g. ``{'defense': 'gaussian', 'strength': 1e-4,
      'attack': 'idlg'}``; they lead its table row.
    config: a full experiment config (as for `runner.run`).
  """
  name: str
  labels: dict[str, Any]
  config: ml_collections.ConfigDict


def plain(value: Any) -> Any:
  """A deep copy of `value` with every ConfigDict turned into a plain dict.

  >>> plain(ml_collections.ConfigDict({'a': {'b': (1, 2)}}))
  {'a': {'b': (1, 2)}}
  """
  if hasattr(value, 'to_dict'):
    return plain(value.to_dict())  # to_dict shares the leaves (lists) with the config
  if isinstance(value, Mapping):
    return {k: plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(plain(v) for v in value)
  return copy.deepcopy(value)


def cell_config(config: Mapping[str, Any], drop: Iterable[str] = (),
                merge: Mapping[str, Mapping[str, Any]] | None = None,
                **overrides: Any) -> ml_collections.ConfigDict:
  """A cell's experiment config: the sweep's, less its sweep-only fields, plus overrides.

  The result is a deep copy and unlocked, so a sweep may set nested fields on
  it (``cell.client.batch_size = 4``) without touching the sweep's config.

  Args:
    config: the sweep's config (a ConfigDict or a mapping).
    drop: top-level fields only the sweep reads (``sweep``, its grid, ...);
      absent ones are ignored.
    merge: sections to overlay field by field, e.g. ``{'server': {'name':
      'imprint'}}`` (an attack's own server and client settings); each must
      be a section of the sweep's config and name only fields it has.
    **overrides: top-level fields to set, replacing whatever was there.

  Returns:
    An unlocked `ml_collections.ConfigDict`.

  Raises:
    ConfigError: `merge` names a section or a field the sweep's config lacks.

  >>> sweep = ml_collections.ConfigDict({'sweep': 'x', 'seed': 0, 'data': {'size': 32}})
  >>> cell = cell_config(sweep, drop=('sweep',), attack={'name': 'idlg'})
  >>> cell.data.size = 16
  >>> sorted(cell), sweep.data.size
  (['attack', 'data', 'seed'], 32)
  >>> cell_config(sweep, merge={'data': {'size': 28}}).data.size
  28
  >>> cell_config(sweep, merge={'data': {'sise': 28}})
  Traceback (most recent call last):
  ...
  dlg_jax.errors.ConfigError: data has no field(s) ['sise'] to set for this cell; its fields are ['size'].
  """
  fields = plain(config)
  for name in drop:
    fields.pop(name, None)
  fields.update({name: plain(value) for name, value in overrides.items()})
  for section, values in plain(dict(merge or {})).items():
    if not isinstance(fields.get(section), dict):
      raise ConfigError(f'the sweep\'s config has no section {section!r} to set fields of.')
    unknown = sorted(set(values) - set(fields[section]))
    if unknown:
      raise ConfigError(f'{section} has no field(s) {unknown} to set for this cell; its fields '
                        f'are {sorted(fields[section])}.')
    fields[section].update(values)
  return ml_collections.ConfigDict(fields)


def slug(*parts: Any) -> str:
  """A directory name from grid coordinates: floats as ``%g``, Nones left out.

  >>> slug('gaussian', 1e-4), slug('none', None), slug('idlg', 'dp_sgd', 1.0)
  ('gaussian-0.0001', 'none', 'idlg-dp_sgd-1')
  """
  return '-'.join(f'{p:g}' if isinstance(p, float) else str(p) for p in parts if p is not None)


def check_cells(cells: Sequence[Cell]) -> None:
  """Raises ConfigError unless every cell is a `Cell` with a unique, safe name."""
  seen = set()
  for cell in cells:
    if not isinstance(cell, Cell):
      raise ConfigError(f'a sweep takes Cell records, got {type(cell).__name__}.')
    if not _SAFE_NAME.match(cell.name):
      raise ConfigError(f'cell name {cell.name!r} is not a safe directory name; use letters, '
                        'digits and ._=+- (not starting with a dot).')
    if cell.name in seen:
      raise ConfigError(f'two cells are named {cell.name!r}; cell names must be unique.')
    seen.add(cell.name)


def read_record(path: str) -> dict[str, Any]:
  """A JSON record a run or a sweep wrote (non-finite numbers were written as null)."""
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def run(cells: Sequence[Cell], workdir: str, *,
        extra: Callable[[Cell, dict[str, Any]], Mapping[str, Any] | None] | None = None,
        runner: Callable[[Any, str], Any] = runner_lib.run) -> list[Row]:
  """Runs every cell not yet finished and returns one row per cell, in order.

  A cell is finished when ``workdir/<name>/metrics.json`` exists (report.py
  writes it atomically); it is then skipped and its record read back.

  Args:
    cells: the grid; names must be unique and filesystem-safe.
    workdir: the sweep's folder; cell c runs in ``workdir/c.name``.
    extra: optional ``(cell, record) -> dict`` of further columns (e.g. a test
      accuracy computed elsewhere); None or {} adds nothing.
    runner: ``(config, cell_workdir) -> anything`` that writes metrics.json;
      `runner.run` unless a test says otherwise.

  Returns:
    Rows ``{**cell.labels, **record['summary'], **extra(cell, record)}``.
  """
  check_cells(cells)
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


def is_missing(value: Any) -> bool:
  """Whether a table shows `value` as missing: None, '' or NaN.

  >>> [is_missing(v) for v in (None, '', float('nan'), 0.0)]
  [True, True, True, False]
  """
  return value is None or value == '' or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any) -> str:
  """How a table prints a value: 4 significant digits, '—' when missing.

  >>> [format_value(v) for v in (None, 1e-4, 48.612, 'fp16', float('nan'), 3)]
  ['—', '0.0001', '48.61', 'fp16', '—', '3']
  """
  if is_missing(value):
    return MISSING
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


def write_table(rows: Sequence[Mapping[str, Any]], workdir: str, columns: Sequence[str],
                name: str = 'table') -> str:
  """Writes ``<name>.md``, ``<name>.csv`` (the chosen columns) and ``<name>.json``.

  Markdown rounds to 4 significant digits; CSV keeps full precision; both
  print a missing value (None, '', NaN, or a column the row lacks) as '—'.
  The JSON holds the full rows (every key), non-finite numbers as null.

  Returns:
    The Markdown table, for the sweep to print.
  """
  if not columns:
    raise ValueError('write_table needs at least one column.')
  os.makedirs(workdir, exist_ok=True)
  lines = ['| ' + ' | '.join(columns) + ' |', '|' + ' --- |' * len(columns)]
  for row in rows:
    lines.append('| ' + ' | '.join(format_value(row.get(c)) for c in columns) + ' |')
  markdown = '\n'.join(lines) + '\n'
  report.write_text(os.path.join(workdir, f'{name}.md'), markdown)

  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator='\n')
  writer.writerow(columns)
  for row in rows:
    writer.writerow([MISSING if is_missing(row.get(c)) else row.get(c) for c in columns])
  report.write_text(os.path.join(workdir, f'{name}.csv'), buf.getvalue())
  report.write_json(os.path.join(workdir, f'{name}.json'), [dict(r) for r in rows])
  return markdown


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
    if is_missing(xv) or is_missing(yv):
      continue
    groups.setdefault(tuple(row.get(c) for c in line), []).append((float(xv), float(yv)))
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
