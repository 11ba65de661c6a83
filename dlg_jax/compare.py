"""One table across finished runs: attack × defense × model × data, and a plot.

  python -m dlg_jax.compare runs/idlg runs/dlg runs/ig --out=runs/compare

Reads each workdir's config.json and metrics.json (nothing is recomputed) and
writes `compare.md`, `compare.csv`, `compare.json` (through `grid.write_table`,
so sweeps and comparisons print numbers alike), `compare.html` (the table and
the plot embedded, opens offline) and `compare.png` (mean PSNR and label
accuracy per run, the two numbers a reader compares first).
"""

from __future__ import annotations

import base64
import html
import json
import os
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags

from dlg_jax import report
from dlg_jax.errors import ConfigError, MissingFileError
from dlg_jax.sweeps import grid

COLUMNS = ('run', 'attack', 'defense', 'model', 'data', 'victims', 'mean_psnr', 'mean_ssim',
           'mean_mse', 'label_accuracy', 'diverged', 'seconds')


def _defense_name(defenses: Sequence[Mapping[str, Any]]) -> str:
  if not defenses:
    return 'none'
  parts = []
  for spec in defenses:
    params = ','.join(f'{k}={v}' for k, v in sorted(spec.items()) if k != 'name')
    parts.append(f'{spec.get("name")}({params})' if params else str(spec.get('name')))
  return '+'.join(parts)


def row(workdir: str) -> dict[str, Any]:
  """One table row from a finished workdir; FileNotFoundError names what is missing."""
  files = {name: os.path.join(workdir, name) for name in ('config.json', 'metrics.json')}
  for name, path in files.items():
    if not os.path.isfile(path):
      raise MissingFileError(f'{workdir} has no {name}: is it a finished run\'s workdir?')
  with open(files['config.json']) as f:
    config = json.load(f)
  summary = grid.read_record(files['metrics.json'])['summary']
  model = config.get('model', {})
  return {
      'run': os.path.basename(os.path.normpath(workdir)),
      'attack': config['attack']['name'],
      'defense': _defense_name(config.get('client', {}).get('defenses', [])),
      'model': model.get('name'),
      'data': config['data']['name'],
      'victims': summary['num_victims'],
      'mean_psnr': summary['mean_psnr'],
      'mean_ssim': summary['mean_ssim'],
      'mean_mse': summary['mean_mse'],
      'label_accuracy': summary['label_accuracy'],
      'diverged': summary['num_diverged'],
      'seconds': summary['seconds'],
  }


def plot(rows: Sequence[Mapping[str, Any]], path: str) -> None:
  """Horizontal bars: mean PSNR and label accuracy per run."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  labels = [f'{r["run"]}\n{r["attack"]}·{r["defense"]}·{r["model"]}·{r["data"]}' for r in rows]
  height = 0.6 + 0.45 * len(rows)
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, height), sharey=True)
  y = range(len(rows))
  ax1.barh(y, [r['mean_psnr'] or 0.0 for r in rows], color='tab:blue')
  ax1.set_yticks(list(y), labels, fontsize=7)
  ax1.invert_yaxis()
  ax1.set_xlabel('mean PSNR (dB)')
  ax2.barh(y, [r['label_accuracy'] or 0.0 for r in rows], color='tab:orange')
  ax2.set_xlim(0, 1)
  ax2.set_xlabel('label accuracy')
  fig.tight_layout()
  report.save_figure(path, fig)
  plt.close(fig)


def render_html(rows: Sequence[Mapping[str, Any]], png_path: str) -> str:
  """compare.html: the table and the plot (embedded)."""
  head = ''.join(f'<th>{html.escape(c)}</th>' for c in COLUMNS)
  body = ''.join('<tr>' + ''.join(f'<td>{html.escape(grid.format_value(r.get(c)))}</td>'
                                  for c in COLUMNS) + '</tr>' for r in rows)
  with open(png_path, 'rb') as f:
    png = base64.b64encode(f.read()).decode('ascii')
  return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>dlg_jax comparison</title>'
          '<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;'
          'font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}th{background:#f0f0f0}'
          'img{max-width:100%}</style></head><body><h1>Comparison of runs</h1>'
          f'<table><tr>{head}</tr>{body}</table>'
          f'<p><img alt="compare.png" src="data:image/png;base64,{png}"></p></body></html>\n')


def compare(workdirs: Sequence[str], out: str) -> list[dict[str, Any]]:
  """Writes the comparison of `workdirs` into `out`; returns the rows."""
  if not workdirs:
    raise ConfigError('give at least one workdir to compare.')
  rows = [row(w) for w in workdirs]
  grid.write_table(rows, out, list(COLUMNS), name='compare')
  png = os.path.join(out, 'compare.png')
  plot(rows, png)
  report.write_text(os.path.join(out, 'compare.html'), render_html(rows, png))
  return rows


FLAGS = flags.FLAGS
flags.DEFINE_string('out', 'runs/compare', 'Folder for compare.{md,csv,json,html,png}.')


def main(argv: Sequence[str]) -> None:
  compare(argv[1:], FLAGS.out)
  with open(os.path.join(FLAGS.out, 'compare.md')) as f:
    print(f.read(), end='')


if __name__ == '__main__':
  app.run(main)
