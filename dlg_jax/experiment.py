"""`run(config, workdir)`: the one place where data, model, client, attack,
metrics and report are wired together (the five hops of STYLE.md §3)."""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from dlg_jax import data as data_lib
from dlg_jax import metrics
from dlg_jax import models
from dlg_jax import report
from dlg_jax.attacks import registry
from dlg_jax.client import simulate
from dlg_jax.types import Private


def _to_dict(config: Any) -> dict[str, Any]:
  return config.to_dict() if hasattr(config, 'to_dict') else dict(config)


def check(config: Mapping[str, Any]) -> None:
  """Validates the fields every run needs, before anything heavy happens."""
  registry.get(config['attack']['name'])
  if config['model'].get('name') not in models.MODELS:
    raise ValueError(f'unknown model {config["model"].get("name")!r}; '
                     f'choose one of {sorted(models.MODELS)}.')
  if config['data']['name'] not in data_lib.LOADERS:
    raise ValueError(f'unknown data set {config["data"]["name"]!r}; '
                     f'choose one of {sorted(data_lib.LOADERS)}.')
  for section, field in (('data', 'num_victims'), ('client', 'batch_size')):
    value = config[section][field]
    if not isinstance(value, int) or value < 1:
      raise ValueError(f'{section}.{field} must be a positive integer, got {value!r}.')


def _progress_bar(total: int, desc: str):
  bar = tqdm.tqdm(total=total, desc=desc, unit='it', dynamic_ncols=True)

  def update(iteration: int, state) -> None:
    bar.update(min(iteration, total) - bar.n)
    loss = np.asarray(state.loss)
    bar.set_postfix(median_loss=f'{np.median(loss):.3g}', stopped=int(np.sum(state.done)))
  return bar, update


def run(config: Mapping[str, Any], workdir: str) -> dict[str, Any]:
  """Runs one experiment and writes its report to `workdir`.

  Returns:
    The metrics record written to metrics.json.
  """
  cfg = _to_dict(config)
  check(cfg)
  data_cfg, client_cfg, attack_cfg = cfg['data'], cfg['client'], cfg['attack']
  num_victims, batch = data_cfg['num_victims'], client_cfg['batch_size']
  os.makedirs(workdir, exist_ok=True)
  report.write_json(os.path.join(workdir, 'config.json'), cfg)

  root = jax.random.key(cfg['seed'])
  k_model, k_client, k_attack = jax.random.split(root, 3)
  del root

  # 1. data + model
  dataset = data_lib.load(data_cfg, num_victims * batch)
  num_classes = int(data_cfg.get('num_classes') or dataset.num_classes)
  if dataset.labels.max() >= num_classes:
    raise ValueError(f'data.num_classes={num_classes} but a label is {dataset.labels.max()}.')
  shape = dataset.images.shape[1:]
  model = models.build(cfg['model'], input_shape=shape, num_classes=num_classes)
  variables = model.init(k_model)
  truth = Private(jnp.asarray(dataset.images.reshape(num_victims, batch, *shape)),
                  jnp.asarray(dataset.labels.reshape(num_victims, batch)))
  names = tuple(tuple(dataset.names[v * batch:(v + 1) * batch]) if batch > 1 else dataset.names[v]
                for v in range(num_victims))

  # 2. client
  start = time.perf_counter()
  update, truth, _ = simulate.client_update(model, variables, truth, k_client, client_cfg)

  # 3. attack (sees the update and the public model only)
  attack = registry.get(attack_cfg['name'])
  bar, progress = _progress_bar(int(attack_cfg['steps']), f'{attack_cfg["name"]} × {num_victims}')
  try:
    result = attack(update, model, variables, k_attack, attack_cfg, progress=progress)
    jax.block_until_ready(result.images)
  finally:
    bar.close()
  seconds = time.perf_counter() - start

  # 4. metrics, 5. report
  scores = metrics.score(result, truth)
  summary = metrics.summary(scores, seconds)
  record = report.write(workdir, cfg, result, truth, scores, summary, names)
  if summary['num_diverged']:
    logging.warning('%d of %d victims diverged (non-finite matching loss); their last finite '
                    'reconstruction is reported.', summary['num_diverged'], num_victims)
  print(report.table(summary, record['victims']), flush=True)
  return record

