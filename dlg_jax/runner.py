"""Runs an experiment at scale and writes its workdir.

`run(config, workdir)` drives the in-memory hops of `experiment` over many
victims: victims in chunks of `run.chunk_victims` (0: all at once), each
chunk in rounds of `run.device_victims` per device, sharded over this
process's devices (`parallel`), scored, and saved to `workdir/chunks/` the
moment it finishes (`chunks`), so a rerun with the same workdir skips the
chunks already there. With `run.distributed`, every process takes its share
of the chunks and process 0 writes the report once all chunk files are in
the (shared) workdir. A progress bar shows the attack and `progress.jsonl`
gains one line per attack chunk.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

from absl import logging
import jax
import numpy as np
import tqdm

from dlg_jax import chunks as chunks_lib
from dlg_jax import experiment
from dlg_jax import html_report
from dlg_jax import metrics
from dlg_jax import parallel
from dlg_jax import report
from dlg_jax.attacks import optimize
from dlg_jax.client import accounting
from dlg_jax.errors import ConfigError


def progress_bar(total: int, desc: str, leave: bool = True):
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


def progress_log(path: str, ids: np.ndarray, truth_images: np.ndarray, start: float):
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


def _chunk_progress(exp: experiment.Experiment, num_victims: int, mesh, device_victims: int,
                    leave: bool, log_path: str):
  """(bar, `experiment.RoundProgress`) for one chunk: the bar and progress.jsonl."""
  steps = int(exp.attack.get('steps', 0))  # 0: a closed-form attack
  num_rounds = len(parallel.rounds(np.arange(num_victims), mesh, device_victims))
  bar, update = progress_bar(steps * num_rounds, f'{exp.attack["name"]} × {num_victims}',
                             leave=leave)
  start = time.perf_counter()

  def for_round(r: int, padded: np.ndarray):
    update.offset = r * steps
    log = progress_log(log_path, padded, exp.truth.images, start)
    return lambda it, state, snap: (update(it, state, snap), log(it, state, snap))
  return bar, for_round


def use_compilation_cache(folder: str) -> str:
  """Turns on JAX's persistent compilation cache in `folder` ('' leaves it off).

  A cache already chosen (JAX_COMPILATION_CACHE_DIR, or a test's setting)
  wins. Returns the folder in use ('' for none).
  """
  chosen = jax.config.jax_compilation_cache_dir
  if chosen or not folder:
    return chosen or ''
  folder = os.path.expanduser(folder)
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as e:
    raise ConfigError(f'run.compilation_cache={folder!r} cannot be created ({e.strerror}); '
                      'give a writable folder, or "" to turn the cache off.') from None
  jax.config.update('jax_compilation_cache_dir', folder)
  # Every attack program is worth keeping: the small ones compile in seconds
  # and run in milliseconds, so compiling is most of a short run.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  return folder


def check_workdir(workdir: str) -> None:
  """Refuses a workdir that is a file, lies under a file, or cannot be created or written."""
  path = os.path.abspath(workdir)
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise ConfigError(f'--workdir={workdir!r} is a file, not a folder; give a folder.')
    if not os.access(path, os.W_OK | os.X_OK):
      raise ConfigError(f'--workdir={workdir!r} is not writable; give a folder you can write.')
    return
  parent = os.path.dirname(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise ConfigError(f'--workdir={workdir!r} lies under {parent!r}, which is a file; give a '
                      'folder path.')
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ConfigError(f'--workdir={workdir!r} cannot be created: {parent!r} is not writable.')


def _pending(workdir: str, mine: list, fp: str, resume: bool) -> list:
  """The chunks of `mine` still to run; damaged chunk files are named, set aside and redone."""
  todo = []
  for c in mine:
    file = chunks_lib.path(workdir, c)
    if not (resume and os.path.exists(file)):
      todo.append(c)
      continue
    try:  # fail now, not after hours, if the workdir holds another run's chunks
      chunks_lib.load(file, fp, c)
    except chunks_lib.Damaged as e:
      logging.warning('%s; set aside as %s.damaged and recomputed.', e, file)
      os.replace(file, file + '.damaged')
      todo.append(c)
  return todo


def run(config: Mapping[str, Any], workdir: str) -> dict[str, Any]:
  """Runs one experiment (resuming finished chunks) and writes its report to `workdir`.

  Nothing in `workdir` changes before the config and the data are checked
  and the workdir's earlier chunks (if any) are known to come from the same
  config and the same input files; config.json is written with the report.

  Returns:
    The metrics record written to metrics.json (on process 0; other
    processes return {} once their chunks are saved).
  """
  cfg = experiment.check(config)
  # (epsilon, delta) when the client runs dp_sgd.
  privacy = accounting.experiment_privacy(cfg['client'])
  check_workdir(workdir)
  run_cfg = dict(cfg.get('run', {}))
  parallel.pin_cpu_cores(run_cfg.get('cpu_cores', ''))
  parallel.initialize_distributed(run_cfg)
  use_compilation_cache(str(run_cfg.get('compilation_cache', '')))
  lead = jax.process_index() == 0

  exp = experiment.setup(cfg)
  provenance = chunks_lib.provenance(cfg)
  chunks_lib.check_manifest(workdir, provenance)
  num_victims = len(exp.truth.labels)
  plan = chunks_lib.plan(num_victims, int(run_cfg.get('chunk_victims', 0)))
  mine = [plan[i] for i in parallel.share(len(plan), jax.process_index(), jax.process_count())]
  fp = chunks_lib.fingerprint(cfg)
  todo = _pending(workdir, mine, fp, bool(run_cfg.get('resume', True)))
  if len(todo) < len(mine):
    logging.info('resuming: %d of %d chunks already in %s', len(mine) - len(todo), len(mine),
                 os.path.join(workdir, 'chunks'))
  if lead and todo:
    chunks_lib.write_manifest(workdir, provenance)
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
      bar, progress = _chunk_progress(exp, c.stop - c.start, mesh, device_victims,
                                      leave=not several, log_path=log_path)
      try:
        out = experiment.attack_victims(exp, np.arange(c.start, c.stop), mesh=mesh,
                                        device_victims=device_victims, progress=progress)
      finally:
        bar.close()
      chunks_lib.save(chunks_lib.path(workdir, c), fingerprint_=fp,
                      victim_ids=np.arange(c.start, c.stop), truth=out.truth, result=out.result,
                      scores=out.scores, seconds=out.seconds, steps=int(cfg['attack'].get('steps', 0)))
      outer.update(c.stop - c.start)
  finally:
    outer.close()
  if not lead:
    return {}
  parallel.wait_for_files([chunks_lib.path(workdir, c) for c in plan])

  # The report, from the chunk files in victim order (identical after a resume).
  parts = [chunks_lib.load(chunks_lib.path(workdir, c), fp, c) for c in plan]
  result, truth, scores, seconds = chunks_lib.merge(parts)
  summary = {**metrics.summary(scores, seconds), **privacy}
  extra = {'run': {'chunks': len(plan), 'chunk_victims': int(run_cfg.get('chunk_victims', 0)),
                   'device_victims': device_victims,
                   'local_devices': int(mesh.devices.size), 'processes': jax.process_count()}}
  record = report.write(workdir, cfg, result, truth, scores, summary, exp.names, extra=extra)
  html_report.write(workdir, cfg, record)
  if summary['num_diverged']:
    logging.warning('%d of %d victims diverged (non-finite matching loss or reconstruction); '
                    'the means are over the %d scored ones.', summary['num_diverged'],
                    num_victims, summary['num_scored'])
  print(report.table(summary, record['victims']), flush=True)
  return record
