"""Khowaja's model study: one DLG attack, four architectures, MSE per step.

Khowaja (2022) runs DLG (L-BFGS, sigmoid activations, random weights) on
LeNet (32×32), ResNet-18 and DenseNet-121 (224×224) and Inception-v3
(299×299), and compares how fast the reconstruction's MSE falls. This module
runs that comparison as a sweep: one cell per model, each a full
`experiment.run` on the same photos resized to the model's input
(`data.size`) and, where the study normalises, with the ImageNet statistics
folded into the model (`data.normalize`). Every cell's MSE to the private
image is read back per snapshot (the attack snapshots its best image after
every `attack.chunk` iterations; `chunk=1` gives one point per iteration)
from the cell's chunk files, where `experiment.run` persists it.

Outputs in the workdir: ``mse_per_step.png`` (one curve per model, mean MSE
over the victims, log scale), ``table.{md,csv,json}`` (model, input size,
parameters, final MSE, PSNR, iterations, seconds, seconds per iteration) and
``curves.json`` (the curves' numbers); each cell's own report is in its
sub-directory and a rerun resumes finished cells.

References:
  A. Khowaja, "Deep Leakage from Gradients" (model study, 2022),
  ../shared/papers/khowaja-dlg-model-study.txt.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import ml_collections
import numpy as np

from dlg_jax import chunks as chunks_lib
from dlg_jax import models
from dlg_jax import report
from dlg_jax import sweep

COLUMNS = ('model', 'input_size', 'parameters', 'final_mse', 'mean_psnr', 'mean_ssim',
           'label_accuracy', 'steps', 'seconds', 'seconds_per_step')
# Experiment fields a cell copies from the study's config; `models` and
# `order` are the study's own.
_SHARED = ('seed', 'data', 'model_init', 'client', 'run', 'attack')


def cells(config: Mapping[str, Any]) -> list[sweep.Cell]:
  """One experiment per entry of `config.order`, each from `config.models[name]`.

  A model entry holds `model` (the model config), `size` (input pixels),
  `normalize` ('' for raw [0, 1] pixels, or a `preprocess.STATS` name) and
  `num_classes` (the classifier's width; the photos' labels must fit) and
  optionally `steps` (this model's iterations; default `attack.steps`), so
  that a slow model can get a shorter run on a slow machine.

  Raises:
    ValueError: a name in `order` that `models` does not define.
  """
  out = []
  for name in config['order']:
    if name not in config['models']:
      raise ValueError(f'models_study: order names {name!r} but config.models defines '
                       f'{sorted(config["models"])}.')
    entry = config['models'][name]
    cfg = ml_collections.ConfigDict({k: _plain(config[k]) for k in _SHARED})
    cfg.model = ml_collections.ConfigDict(_plain(entry['model']))
    cfg.data.size = int(entry['size'])
    cfg.data.normalize = str(entry['normalize'])
    cfg.data.num_classes = int(entry['num_classes'])
    cfg.attack.steps = int(entry.get('steps', cfg.attack.steps))
    out.append(sweep.Cell(name, {'model': name, 'input_size': int(entry['size'])}, cfg))
  return out


def _plain(value: Any) -> Any:
  return value.to_dict() if hasattr(value, 'to_dict') else value


def parameter_count(config: Mapping[str, Any], num_classes: int) -> int:
  """Trainable parameters of a cell's model (shapes only, no computation)."""
  size, channels = int(config['data']['size']), int(config['data']['channels'])
  model = models.build(_plain(config['model']), input_shape=(size, size, channels),
                       num_classes=num_classes)
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes['params'])))


def mse_curve(cell: sweep.Cell, workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """(iterations, mean MSE over victims) of a finished cell, from its chunk files."""
  cfg = cell.config.to_dict()
  plan = chunks_lib.plan(int(cfg['data']['num_victims']),
                         int(cfg.get('run', {}).get('chunk_victims', 0)))
  fp = chunks_lib.fingerprint(cfg)
  parts = [chunks_lib.load(chunks_lib.path(os.path.join(workdir, cell.name), c), fp)
           for c in plan]
  _, _, scores, _ = chunks_lib.merge(parts)
  its = np.array([it for it, _ in scores.mse_trace], np.int64)
  mse = np.array([float(np.mean(m)) for _, m in scores.mse_trace])
  return its, mse


def plot_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str,
                title: str) -> None:
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


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Runs (or resumes) every model's cell and writes the plot and the table."""
  grid = cells(config)
  curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}

  def extra(cell: sweep.Cell, record: Mapping[str, Any]) -> dict[str, Any]:
    curves[cell.name] = mse_curve(cell, workdir)
    summary = record['summary']
    steps = int(max(v['iterations'] for v in record['victims']))
    return {'final_mse': summary['mean_mse'], 'steps': steps,
            'parameters': parameter_count(cell.config, int(cell.config.data.num_classes)),
            'seconds_per_step': summary['seconds'] / max(steps, 1)}

  rows = sweep.run(grid, workdir, extra=extra)
  sweep.write_table(rows, workdir, COLUMNS)
  report.write_json(os.path.join(workdir, 'curves.json'),
                    {name: {'iterations': its.tolist(), 'mean_mse': mse.tolist()}
                     for name, (its, mse) in curves.items()})
  plot_curves(curves, os.path.join(workdir, 'mse_per_step.png'),
              f'DLG ({config.attack.name}, labels {config.attack.labels}), sigmoid nets: '
              f'MSE per iteration')
  print(open(os.path.join(workdir, 'table.md')).read(), flush=True)
  return rows
