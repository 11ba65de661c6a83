"""A run's victims in chunks: the plan, one file per finished chunk, the merge.

Why files per chunk: a run over thousands of victims must survive being
killed. Each chunk's results (per-victim scores, reconstructions, traces) go
to `workdir/chunks/chunk_<start>_<stop>.npz` the moment the chunk finishes,
written to a temporary name and renamed, so a file is either whole or absent.
A later run with the same workdir and config skips every chunk whose file is
there; the merge reads the files in victim order, so the final report does
not depend on which chunks ran in which session, process or order.

Each file carries the fingerprint of the config that made it; a file from a
different config raises instead of being mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from dlg_jax.errors import ConfigError
from dlg_jax.types import AttackResult, Private, Scores

# Config fields that do not change any victim's result (how the run is
# executed), left out of the fingerprint so that e.g. resuming with progress
# bars off still matches. `cpu_cores` sets XLA's thread count, which can move
# results at float-rounding level only (as the device count can, see
# parallel.rounds); the processes of one run pin different cores.
_EXECUTION_FIELDS = ('resume', 'distributed', 'coordinator_address', 'num_processes',
                     'process_id', 'cpu_cores')


class Chunk(NamedTuple):
  index: int
  start: int  # first global victim index
  stop: int  # one past the last


def plan(num_victims: int, chunk_victims: int) -> list[Chunk]:
  """Consecutive chunks of `chunk_victims` (0: one chunk of all victims).

  >>> plan(5, 2)
  [Chunk(index=0, start=0, stop=2), Chunk(index=1, start=2, stop=4), Chunk(index=2, start=4, stop=5)]
  """
  size = chunk_victims or num_victims
  return [Chunk(i, s, min(s + size, num_victims))
          for i, s in enumerate(range(0, num_victims, size))]


# Fields added after runs were saved, left out at the value that reproduces
# those runs, so that their chunk files still match.
_NEUTRAL = {'device_victims': 0}


def fingerprint(config: Mapping[str, Any]) -> str:
  """A hash of everything in `config` that can change a victim's result."""
  cfg = dict(config)
  cfg['run'] = {k: v for k, v in dict(cfg.get('run', {})).items()
                if k not in _EXECUTION_FIELDS and not (k in _NEUTRAL and v == _NEUTRAL[k])}
  text = json.dumps(cfg, sort_keys=True, default=repr)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def path(workdir: str, chunk: Chunk) -> str:
  return os.path.join(workdir, 'chunks', f'chunk_{chunk.start:07d}_{chunk.stop:07d}.npz')


def save(file: str, *, fingerprint_: str, victim_ids: np.ndarray, truth: Private,
         result: AttackResult, scores: Scores, seconds: float, steps: int) -> None:
  """Writes one finished chunk atomically (temporary name, then rename)."""
  os.makedirs(os.path.dirname(file), exist_ok=True)
  trace = np.asarray(result.loss_trace, np.float32)
  if trace.shape[1] < steps:  # the loop stopped early: every lane had stopped
    trace = np.pad(trace, ((0, 0), (0, steps - trace.shape[1])), constant_values=np.nan)
  its = np.asarray([it for it, _ in scores.mse_trace], np.int64)
  mse_trace = np.stack([m for _, m in scores.mse_trace], axis=0) if its.size else np.zeros((0, 0))
  arrays = dict(
      fingerprint=np.asarray(fingerprint_), victim_ids=np.asarray(victim_ids, np.int64),
      seconds=np.float64(seconds),
      ground_truth=np.asarray(truth.images), true_labels=np.asarray(truth.labels),
      reconstructions=np.asarray(result.images), recovered_labels=np.asarray(result.labels),
      loss=np.asarray(result.loss), iterations=np.asarray(result.iterations),
      evaluations=np.asarray(result.evaluations), diverged=np.asarray(result.diverged),
      loss_trace=trace, mse=scores.mse, psnr=scores.psnr, ssim=scores.ssim,
      label_correct=scores.label_correct, snapshot_iterations=its, mse_trace=mse_trace)
  tmp = file + '.tmp'
  with open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, file)


def load(file: str, fingerprint_: str) -> dict[str, np.ndarray]:
  """One chunk file; ValueError if another config wrote it."""
  with np.load(file, allow_pickle=False) as f:
    found = str(f['fingerprint'])
    if found != fingerprint_:
      raise ConfigError(
          f'{file} was written by a different config (fingerprint {found}, this one '
          f'{fingerprint_}); use a new --workdir, or move its chunks/ folder away to recompute.')
    return {k: f[k] for k in f.files}


def carry_forward(iterations: Sequence[int], values: Sequence[Any],
                  wanted: Sequence[int]) -> list[Any]:
  """For each iteration in `wanted`, the value of the last one at or before it.

  A run (chunk or round) whose lanes all stopped early has no later
  snapshots; its lanes are frozen from then on, so its last value stands for
  every later iteration.

  >>> carry_forward([0, 10], ['a', 'b'], [0, 10, 20, 30])
  ['a', 'b', 'b', 'b']
  """
  return [values[max(j for j, t in enumerate(iterations) if t <= it)] for it in wanted]


def _merge_mse_trace(parts: list[dict[str, np.ndarray]]) -> tuple[tuple[int, np.ndarray], ...]:
  """Per-victim MSE at the union of snapshot iterations (`carry_forward`)."""
  its = sorted(set(int(i) for p in parts for i in p['snapshot_iterations']))
  columns = []
  for p in parts:
    own = [int(i) for i in p['snapshot_iterations']]
    columns.append(np.stack(carry_forward(own, p['mse_trace'], its), axis=0))
  values = np.concatenate(columns, axis=1)
  return tuple((it, values[k]) for k, it in enumerate(its))


def merge(parts: list[dict[str, np.ndarray]]) -> tuple[AttackResult, Private, Scores, float]:
  """Concatenates chunk files (in victim order) into one run's records."""
  cat = lambda key: np.concatenate([p[key] for p in parts], axis=0)
  result = AttackResult(
      images=cat('reconstructions'), labels=cat('recovered_labels'), loss=cat('loss'),
      iterations=cat('iterations'), evaluations=cat('evaluations'), diverged=cat('diverged'),
      loss_trace=cat('loss_trace'), snapshots=())
  truth = Private(cat('ground_truth'), cat('true_labels'))
  scores = Scores(mse=cat('mse'), psnr=cat('psnr'), ssim=cat('ssim'),
                  label_correct=cat('label_correct'), diverged=cat('diverged'),
                  iterations=cat('iterations'), loss=cat('loss'),
                  mse_trace=_merge_mse_trace(parts))
  seconds = float(sum(float(p['seconds']) for p in parts))
  return result, truth, scores, seconds
