"""`run(config, workdir)`: the one place where data, model, client, attack,
metrics and report are wired together (the five hops of STYLE.md §3).

Victims run in chunks of `run.chunk_victims` (0: all at once). Each chunk runs
in rounds of `run.device_victims` victims per device, sharded over this
process's devices on a one-axis mesh (`parallel`), is scored, and is saved
to `workdir/chunks/` as soon as it finishes (`chunks`); a rerun with the same
workdir skips the chunks already there. Every per-victim key folds in the
victim's global index, and with `run.device_victims` > 0 every device runs
the same fixed-size program, so a victim's result is bitwise the same on 1,
2 or 4 devices and in any chunk. With `run.distributed`, every process
takes its share of the chunks and process 0 writes the report once all chunk
files are in the (shared) workdir.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from dlg_jax import chunks as chunks_lib
from dlg_jax import data as data_lib
from dlg_jax import html_report
from dlg_jax import metrics
from dlg_jax import models
from dlg_jax import parallel
from dlg_jax import preprocess
from dlg_jax import report
from dlg_jax import weights
from dlg_jax.attacks import optimize
from dlg_jax.attacks import registry
from dlg_jax.client import accounting
from dlg_jax.client import simulate
from dlg_jax.types import AttackResult, Private


def _to_dict(config: Any) -> dict[str, Any]:
  return config.to_dict() if hasattr(config, 'to_dict') else dict(config)


def check(config: Mapping[str, Any]) -> None:
  """Validates the fields every run needs, before anything heavy happens."""
  registry.get(config['attack']['name'])
  weights.check(config.get('model_init', {}))
  models.module_arguments(config['model'])
  data_lib.check_name(config['data']['name'])
  for section, field in (('data', 'num_victims'), ('client', 'batch_size')):
    value = config[section][field]
    if not isinstance(value, int) or value < 1:
      raise ValueError(f'{section}.{field} must be a positive integer, got {value!r}.')
  for field, zero in (('chunk_victims', 'one chunk'),
                      ('device_victims', 'each chunk split evenly over the devices')):
    value = config.get('run', {}).get(field, 0)
    if not isinstance(value, int) or value < 0:
      raise ValueError(f'run.{field} must be an integer >= 0 (0: {zero}), got {value!r}.')


def _progress_bar(total: int, desc: str, leave: bool = True):
  """A tqdm bar over `total` iterations and a callback for one round at a time.

  `update.offset` is the iterations of the rounds before the current one.
  """
  bar = tqdm.tqdm(total=total, desc=desc, unit='it', dynamic_ncols=True, leave=leave)

  def update(iteration: int, state, snapshot=None) -> None:
    del snapshot
    bar.update(min(update.offset + iteration, total) - bar.n)
    loss = np.asarray(state.loss)
    bar.set_postfix(median_loss=f'{np.median(loss):.3g}', stopped=int(np.sum(state.done)))
  update.offset = 0
  return bar, update


def _progress_log(path: str, ids: np.ndarray, truth_images: np.ndarray, start: float):
  """A callback(iteration, state, snapshot) appending one JSON line per attack chunk to `path`.

  Each line holds the iteration, the seconds since `start`, the median
  matching loss and each victim's PSNR of its best restart so far against
  the truth (the lab's view, never the attacker's). Written as the run goes,
  so a long run stopped early still leaves its PSNR-per-iteration curve.
  `ids` is a round's (possibly padded) victim indices; repeats are dropped.
  """
  first = np.unique(ids, return_index=True)[1]

  def log(iteration: int, state, snapshot) -> None:
    # `snapshot`: each victim's best restart, clipped (what `optimize.run` records).
    _, loss = optimize.kept(state)
    psnr = metrics.matched_psnr(np.asarray(snapshot)[first], truth_images[ids[first]])
    record = {'victims': ids[first].tolist(), 'iteration': int(iteration),
              'seconds': round(time.perf_counter() - start, 3),
              'median_loss': float(np.median(np.asarray(loss))),
              'psnr': [round(float(p), 3) for p in psnr]}
    with open(path, 'a') as f:
      f.write(json.dumps(record) + '\n')
  return log


def _names(dataset_names: tuple[str, ...], num_victims: int, batch: int) -> tuple:
  return tuple(tuple(dataset_names[v * batch:(v + 1) * batch]) if batch > 1 else dataset_names[v]
               for v in range(num_victims))


_PER_VICTIM_FIELDS = ('images', 'labels', 'loss', 'iterations', 'evaluations', 'diverged')


def _merge_rounds(results: list[AttackResult], keep: int) -> AttackResult:
  """One result from the rounds' (host arrays, victim order), padding dropped.

  A round whose lanes all stopped early has a shorter loss trace and fewer
  snapshots; its lanes were frozen from then on, so the trace goes on as NaN
  (what a stopped lane records) and its last snapshot carries forward, which
  is what one round holding all the victims would have recorded.
  """
  merged = {f: np.concatenate([np.asarray(getattr(r, f)) for r in results])[:keep]
            for f in _PER_VICTIM_FIELDS}
  length = max(r.loss_trace.shape[1] for r in results)
  merged['loss_trace'] = np.concatenate([
      np.pad(np.asarray(r.loss_trace, np.float32), ((0, 0), (0, length - r.loss_trace.shape[1])),
             constant_values=np.nan) for r in results])[:keep]
  its = sorted({it for r in results for it, _ in r.snapshots})
  columns = [chunks_lib.carry_forward([i for i, _ in r.snapshots], [s for _, s in r.snapshots], its)
             for r in results]
  snapshots = tuple((it, np.concatenate([np.asarray(c[k]) for c in columns])[:keep])
                    for k, it in enumerate(its))
  return AttackResult(**merged, snapshots=snapshots)


def run_chunk(ids: np.ndarray, *, model, variables, truth: Private, k_client: jax.Array,
              k_attack: jax.Array, client_cfg: Mapping[str, Any], attack_cfg: Mapping[str, Any],
              mesh: jax.sharding.Mesh, device_victims: int = 0, leave_bar: bool = True,
              log_path: str | None = None):
  """Client round, attack and scores of the victims `ids` (global indices).

  `truth` holds every victim of the run (host arrays). The chunk's victims run
  in rounds of `device_victims` per device (`parallel.rounds`; 0: one round
  split evenly over the devices), each round sharded on the victim axis of
  `mesh`; padding is dropped from the results. With `log_path`, every attack
  chunk appends a line to it (`_progress_log`).

  Returns:
    (result, truth of the chunk, scores, seconds of client + attack), as host arrays.
  """
  attack = registry.get(attack_cfg['name'])
  rounds = parallel.rounds(ids, mesh, device_victims)
  steps = int(attack_cfg['steps'])
  bar, progress = _progress_bar(steps * len(rounds), f'{attack_cfg["name"]} × {len(ids)}',
                                leave=leave_bar)
  results = []
  start = time.perf_counter()
  try:
    for r, padded in enumerate(rounds):
      part_truth, victim_ids = parallel.shard_victims(
          (Private(truth.images[padded], truth.labels[padded]), jnp.asarray(padded, jnp.int32)),
          mesh)
      update, _, _ = simulate.client_update(model, variables, part_truth, k_client, client_cfg,
                                            victim_ids=victim_ids)
      progress.offset = r * steps
      callback = progress
      if log_path:
        log = _progress_log(log_path, padded, truth.images, start)
        callback = lambda it, state, snap, log=log: (progress(it, state, snap),
                                                     log(it, state, snap))
      result = attack(update, model, variables, k_attack, attack_cfg, progress=callback)
      jax.block_until_ready(result.images)
      results.append(result)
  finally:
    bar.close()
  seconds = time.perf_counter() - start
  result = _merge_rounds(results, keep=len(ids))
  chunk_truth = Private(truth.images[ids], truth.labels[ids])
  # B > 1: reconstructions in the private images' order (optimal assignment),
  # so that the saved arrays and grid.png pair each image with its partner.
  result = metrics.match(result, chunk_truth)
  scores = metrics.score(result, chunk_truth)
  return result, chunk_truth, scores, seconds


def run(config: Mapping[str, Any], workdir: str) -> dict[str, Any]:
  """Runs one experiment (resuming finished chunks) and writes its report to `workdir`.

  Returns:
    The metrics record written to metrics.json (on process 0; other
    processes return {} once their chunks are saved).
  """
  cfg = _to_dict(config)
  check(cfg)
  # (epsilon, delta) when the client runs dp_sgd; computed first, so bad settings fail early.
  privacy = accounting.experiment_privacy(cfg['client'])
  run_cfg = dict(cfg.get('run', {}))
  parallel.pin_cpu_cores(run_cfg.get('cpu_cores', ''))
  parallel.initialize_distributed(run_cfg)
  data_cfg, client_cfg, attack_cfg = cfg['data'], cfg['client'], cfg['attack']
  num_victims, batch = data_cfg['num_victims'], client_cfg['batch_size']
  lead = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  if lead:
    report.write_json(os.path.join(workdir, 'config.json'), cfg)

  root = jax.random.key(cfg['seed'])
  k_model, k_client, k_attack = jax.random.split(root, 3)
  del root

  # 1. data + model (the model takes [0, 1] pixels; normalisation is its first layer)
  dataset = data_lib.load(data_cfg, num_victims * batch)
  num_classes = int(data_cfg.get('num_classes') or dataset.num_classes)
  if dataset.labels.max() >= num_classes:
    raise ValueError(f'data.num_classes={num_classes} but a label is {dataset.labels.max()}.')
  shape = dataset.images.shape[1:]
  model = models.build(cfg['model'], input_shape=shape, num_classes=num_classes)
  model = preprocess.normalized(model, preprocess.from_config(data_cfg, shape[-1]))
  variables = weights.initial(cfg.get('model_init', {}), model, k_model, dataset)
  truth = Private(dataset.images.reshape(num_victims, batch, *shape),
                  dataset.labels.reshape(num_victims, batch))
  names = _names(dataset.names, num_victims, batch)

  # 2.-4. client, attack (sees the update and the public model only), scores: per chunk
  plan = chunks_lib.plan(num_victims, int(run_cfg.get('chunk_victims', 0)))
  mine = [plan[i] for i in parallel.share(len(plan), jax.process_index(), jax.process_count())]
  fp = chunks_lib.fingerprint(cfg)
  resume = bool(run_cfg.get('resume', True))
  todo = [c for c in mine if not (resume and os.path.exists(chunks_lib.path(workdir, c)))]
  for c in mine:
    if c not in todo:  # fail now, not after hours, if the workdir holds another config's chunks
      chunks_lib.load(chunks_lib.path(workdir, c), fp)
  if len(todo) < len(mine):
    logging.info('resuming: %d of %d chunks already in %s', len(mine) - len(todo), len(mine),
                 os.path.join(workdir, 'chunks'))
  mesh = parallel.victim_mesh()
  log_path = os.path.join(workdir, 'progress.jsonl' if jax.process_count() == 1
                          else f'progress.{jax.process_index()}.jsonl')
  device_victims = int(run_cfg.get('device_victims', 0))
  several = len(plan) > 1
  outer = tqdm.tqdm(total=sum(c.stop - c.start for c in mine), unit='victim', desc='victims',
                    initial=sum(c.stop - c.start for c in mine if c not in todo),
                    dynamic_ncols=True, disable=not several)
  try:
    for c in todo:
      result, chunk_truth, scores, seconds = run_chunk(
          np.arange(c.start, c.stop), model=model, variables=variables, truth=truth,
          k_client=k_client, k_attack=k_attack, client_cfg=client_cfg, attack_cfg=attack_cfg,
          mesh=mesh, device_victims=device_victims, leave_bar=not several, log_path=log_path)
      chunks_lib.save(chunks_lib.path(workdir, c), fingerprint_=fp,
                      victim_ids=np.arange(c.start, c.stop), truth=chunk_truth, result=result,
                      scores=scores, seconds=seconds, steps=int(attack_cfg['steps']))
      outer.update(c.stop - c.start)
  finally:
    outer.close()
  if not lead:
    return {}
  parallel.wait_for_files([chunks_lib.path(workdir, c) for c in plan])

  # 5. report, from the chunk files in victim order (identical after a resume)
  parts = [chunks_lib.load(chunks_lib.path(workdir, c), fp) for c in plan]
  result, truth, scores, seconds = chunks_lib.merge(parts)
  summary = {**metrics.summary(scores, seconds), **privacy}
  extra = {'run': {'chunks': len(plan), 'chunk_victims': int(run_cfg.get('chunk_victims', 0)),
                   'device_victims': device_victims,
                   'local_devices': int(mesh.devices.size), 'processes': jax.process_count()}}
  record = report.write(workdir, cfg, result, truth, scores, summary, names, extra=extra)
  html_report.write(workdir, cfg, record)
  if summary['num_diverged']:
    logging.warning('%d of %d victims diverged (non-finite matching loss); their last finite '
                    'reconstruction is reported.', summary['num_diverged'], num_victims)
  print(report.table(summary, record['victims']), flush=True)
  return record
