"""Khowaja's model study: one DLG attack, four architectures, MSE per step.

Khowaja (2022) runs DLG (L-BFGS, sigmoid activations, random weights) on
LeNet (32×32), ResNet-18 and DenseNet-121 (224×224) and Inception-v3
(299×299), and compares how fast the reconstruction's MSE falls. This module
runs that comparison as a sweep: one cell per model, each a full `runner.run`
on the same photos resized to the model's input (`data.size`) and, where the
study normalises, with the ImageNet statistics folded into the model
(`data.normalize`). Every cell's MSE to the private image per snapshot (the
attack snapshots its best image after every `attack.chunk` iterations;
`chunk=1` gives one point per iteration) is read back from the cell's
``curves.json``, which every run writes next to its metrics.json.

Outputs in the workdir: ``mse_per_step.png`` (one curve per model, mean MSE
over the victims, log scale), ``table.{md,csv,json}`` (model, input size,
parameters, final MSE, PSNR, iterations, seconds, seconds per iteration) and
``curves.json`` (the curves' numbers, per model); each cell's own report is
in its sub-directory and a rerun resumes finished cells.

References:
  A. Khowaja, "Deep Leakage from Gradients" (model study, 2022).
"""

from __future__ import annotations

from collections.abc import Mapping
import os
from typing import Any

import jax
import numpy as np

from dlg_jax import models
from dlg_jax import report
from dlg_jax.errors import ConfigError, MissingFileError
from dlg_jax.sweeps import grid

COLUMNS = ('model', 'input_size', 'parameters', 'final_mse', 'mean_psnr', 'mean_ssim',
           'label_accuracy', 'steps', 'seconds', 'seconds_per_step')
# The study's own fields; a cell's experiment config is the rest.
SWEEP_FIELDS = ('sweep', 'order', 'models')

Curve = tuple[np.ndarray, np.ndarray]  # (iterations, mean MSE over the victims)


def cells(config: Mapping[str, Any]) -> list[grid.Cell]:
  """One experiment per entry of `config.order`, each from `config.models[name]`.

  A model entry holds `model` (the model config), `size` (input pixels),
  `normalize` ('' for raw [0, 1] pixels, or a `preprocess.STATS` name) and
  `num_classes` (the classifier's width; the photos' labels must fit) and
  optionally `steps` (this model's iterations; default `attack.steps`), so
  that a slow model can get a shorter run on a slow machine.

  Raises:
    ConfigError: a name in `order` that `models` does not define.
  """
  config = grid.plain(config)
  out = []
  for name in config['order']:
    if name not in config['models']:
      raise ConfigError(f'models_study: order names {name!r} but config.models defines '
                        f'{sorted(config["models"])}.')
    entry = config['models'][name]
    cell = grid.cell_config(config, drop=SWEEP_FIELDS, model=entry['model'])
    cell.data.size = int(entry['size'])
    cell.data.normalize = str(entry['normalize'])
    cell.data.num_classes = int(entry['num_classes'])
    cell.attack.steps = int(entry.get('steps', cell.attack.steps))
    out.append(grid.Cell(name, {'model': name, 'input_size': int(entry['size'])}, cell))
  return out


def parameter_count(config: Mapping[str, Any]) -> int:
  """Trainable parameters of a cell's model (shapes only, no computation)."""
  data = config['data']
  size = int(data['size'])
  model = models.build(grid.plain(config['model']),
                       input_shape=(size, size, int(data['channels'])),
                       num_classes=int(data['num_classes']))
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes['params'])))


def read_curve(cell_dir: str) -> Curve:
  """(iterations, mean MSE over victims) of a finished run, from its curves.json."""
  path = os.path.join(cell_dir, 'curves.json')
  if not os.path.exists(path):
    raise MissingFileError(f'{path} is missing: the run in {cell_dir} predates curves.json; '
                            'delete its metrics.json to run it again.')
  curves = grid.read_record(path)
  return np.asarray(curves['iterations'], np.int64), np.asarray(curves['mean_mse'], np.float64)


def plot_curves(curves: Mapping[str, Curve], path: str, title: str) -> None:
  """MSE against iteration, one line per model, log y."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  for name, (its, mse) in curves.items():
    ax.plot(its, mse, lw=1.4, label=name)
  ax.set_yscale('log')
  ax.set_xlabel('L-BFGS iteration')
  ax.set_ylabel('MSE to the private image ([0, 1] pixels)')
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=8)
  fig.tight_layout()
  report.save_figure(path, fig)
  plt.close(fig)


def run(config: Mapping[str, Any], workdir: str) -> list[dict[str, Any]]:
  """Runs (or resumes) every model's cell and writes the plot and the table."""
  config = grid.plain(config)
  curves: dict[str, Curve] = {}

  def extra(cell: grid.Cell, record: Mapping[str, Any]) -> dict[str, Any]:
    curves[cell.name] = read_curve(os.path.join(workdir, cell.name))
    summary = record['summary']
    steps = int(max(v['iterations'] for v in record['victims']))
    return {'final_mse': summary['mean_mse'], 'steps': steps,
            'parameters': parameter_count(cell.config),
            'seconds_per_step': summary['seconds'] / max(steps, 1)}

  rows = grid.run(cells(config), workdir, extra=extra)
  print(grid.write_table(rows, workdir, COLUMNS), flush=True)
  report.write_json(os.path.join(workdir, 'curves.json'),
                    {name: {'iterations': its.tolist(), 'mean_mse': mse.tolist()}
                     for name, (its, mse) in curves.items()})
  attack = config['attack']
  plot_curves(curves, os.path.join(workdir, 'mse_per_step.png'),
              f'DLG ({attack["name"]}, labels {attack["labels"]}), sigmoid nets: '
              'MSE per iteration')
  return rows
