"""One table across finished runs: attack × defense × model × data, and a plot.

  python -m dlg_jax.compare runs/idlg runs/dlg runs/ig --out=runs/compare

Reads each workdir's config.json and metrics.json (nothing is recomputed) and
writes `compare.md`, `compare.csv`, `compare.json` (through `grid.write_table`,
so sweeps and comparisons print numbers alike), `compare.html` (the table and
the plot embedded, opens offline) and `compare.png` (mean PSNR and label
accuracy per run, the two numbers a reader compares first). `scored` says
over how many of the `victims` the image means are taken (`metrics.summary`);
runs written before it existed show '—'.

An unfinished run or a folder that is not a workdir ends the command with
one line saying so and exit status 2, as launch.py does for a bad setting.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags

from dlg_jax import html_report
from dlg_jax import report
from dlg_jax.errors import ConfigError, MissingFileError
from dlg_jax.sweeps import grid

_CSS = ('body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}'
        'td,th{border:1px solid #ccc;padding:3px 7px}th{background:#f0f0f0}img{max-width:100%}')

COLUMNS = ('run', 'attack', 'defense', 'model', 'data', 'victims', 'mean_psnr', 'mean_ssim',
           'mean_mse', 'label_accuracy', 'scored', 'diverged', 'seconds')


def _defense_name(defenses: Sequence[Mapping[str, Any]]) -> str:
  if not defenses:
    return 'none'
  parts = []
  for spec in defenses:
    params = ','.join(f'{k}={v}' for k, v in sorted(spec.items()) if k != 'name')
    parts.append(f'{spec.get("name")}({params})' if params else str(spec.get('name')))
  return '+'.join(parts)


def row(workdir: str) -> dict[str, Any]:
  """One table row from a finished workdir; a `MissingFileError` says what is missing."""
  if not os.path.isdir(workdir):
    raise MissingFileError(f'{workdir} does not exist; give the --workdir of a run.')
  files = {name: os.path.join(workdir, name) for name in ('config.json', 'metrics.json')}
  if not os.path.isfile(files['config.json']):
    raise MissingFileError(f'{workdir} has no config.json: it is not a run\'s workdir; give '
                           'the --workdir of a run.')
  if not os.path.isfile(files['metrics.json']):
    raise MissingFileError(
        f'{workdir} has no metrics.json: the run is unfinished (or still running); finish it '
        'by running launch.py again with the same --config and --workdir (it resumes), or '
        'leave it out of the comparison.')
  try:
    with open(files['config.json']) as f:
      config = json.load(f)
    return _row(workdir, config, grid.read_record(files['metrics.json'])['summary'])
  except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
    raise ConfigError(f'{workdir}: config.json or metrics.json is not a run\'s record '
                      f'({type(e).__name__}: {e}).') from None


def _row(workdir: str, config: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
  """The row of a run from its config.json and metrics.json summary (KeyError if not a run's)."""
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
      'scored': summary.get('num_scored'),  # absent from runs written before it
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
  """compare.html: the table and the plot (embedded); every value escaped."""
  fill = html_report.fill
  with open(png_path, 'rb') as f:
    png = base64.b64encode(f.read()).decode('ascii')
  table = html_report.table(list(COLUMNS),
                            [[grid.format_value(r.get(c)) for c in COLUMNS] for r in rows])
  return fill('<!DOCTYPE html><html><head><meta charset="utf-8"><title>dlg_jax comparison</title>'
              '<style>{}</style></head><body><h1>Comparison of runs</h1>{}'
              '<p><img alt="compare.png" src="data:image/png;base64,{}"></p></body></html>\n',
              html_report.Html(_CSS), table, png)


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
  try:
    compare(argv[1:], FLAGS.out)
  except ConfigError as e:  # the user's to fix: one line, no traceback
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  with open(os.path.join(FLAGS.out, 'compare.md')) as f:
    print(f.read(), end='')


if __name__ == '__main__':
  app.run(main)
