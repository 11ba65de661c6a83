"""A run's victims in chunks: the plan, one file per finished chunk, the merge.

Why files per chunk: a run over thousands of victims must survive being
killed. Each chunk's results (per-victim scores, reconstructions, traces) go
to `workdir/chunks/chunk_<start>_<stop>.npz` the moment the chunk finishes,
written to a temporary name and renamed, so a file is either whole or absent.
A later run with the same workdir and config skips every chunk whose file is
there; the merge reads the files in victim order, so the final report does
not depend on which chunks ran in which session, process or order.

Each file carries the fingerprint of the run that made it: the config's
fields that can change a result and the contents of every input file
(`provenance`), so that replacing `data.path` between two runs of one command
is noticed. `workdir/chunks/manifest.json` keeps what was fingerprinted, so
a refusal names what changed. A file from a different run raises instead of
being mixed in; a file that cannot be read, or that holds other victims than
its name promises, is `Damaged`, and the runner redoes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping, NamedTuple, Sequence
import zipfile

import numpy as np

from dlg_jax import files
from dlg_jax.errors import ConfigError
from dlg_jax.types import AttackResult, Private, Scores

# Config fields that do not change any victim's result (how the run is
# executed), left out of the fingerprint so that e.g. resuming with progress
# bars off still matches. `cpu_cores` sets XLA's thread count, which can move
# results at float-rounding level only (as the device count can, see
# parallel.rounds); the processes of one run pin different cores.
_EXECUTION_FIELDS = ('resume', 'distributed', 'coordinator_address', 'num_processes',
                     'process_id', 'cpu_cores', 'compilation_cache')


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
_NEUTRAL_CLIENT = {'users': 1}


# Settings that name input files or folders: their contents enter the fingerprint.
INPUT_FIELDS = (('data', 'path'), ('data', 'data_dir'), ('model_init', 'path'))


class Damaged(Exception):
  """A chunk file that cannot be trusted (unreadable, or another chunk's victims)."""


def _file_digest(path: str) -> str:
  sha = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      sha.update(block)
  return sha.hexdigest()


def content_digest(path: str) -> str:
  """SHA-256 of a file, or of a folder's files (relative names and contents), sorted.

  A TFDS `data_dir` can hold gigabytes; its files count by name and size.
  """
  if os.path.isfile(path):
    return _file_digest(path)
  sha = hashlib.sha256()
  for root, dirs, names in os.walk(path):
    dirs.sort()
    for name in sorted(names):
      full = os.path.join(root, name)
      sha.update(os.path.relpath(full, path).encode() + b'\0')
      sha.update(str(os.path.getsize(full)).encode() if '.array_record' in name
                 else _file_digest(full).encode())
  return sha.hexdigest()


def provenance(config: Mapping[str, Any]) -> dict[str, Any]:
  """What a run's results depend on: the config (execution fields left out) and its inputs.

  `inputs` maps each input setting ('data.path', ...) that names an existing
  file or folder to its `content_digest`.
  """
  cfg = dict(config)
  cfg['run'] = {k: v for k, v in dict(cfg.get('run', {})).items()
                if k not in _EXECUTION_FIELDS and not (k in _NEUTRAL and v == _NEUTRAL[k])}
  if 'client' in cfg:
    cfg['client'] = {k: v for k, v in dict(cfg['client']).items()
                     if not (k in _NEUTRAL_CLIENT and v == _NEUTRAL_CLIENT[k])}
  if dict(cfg.get('server') or {}).get('name', 'honest') == 'honest':
    cfg.pop('server', None)  # an honest server changes nothing (server/__init__.py)
  inputs = {}
  for section, field in INPUT_FIELDS:
    value = dict(cfg.get(section, {}) or {}).get(field) or ''
    if value and os.path.exists(value):
      inputs[f'{section}.{field}'] = content_digest(value)
  return {'config': json.loads(json.dumps(cfg, sort_keys=True, default=repr)), 'inputs': inputs}


def fingerprint(config: Mapping[str, Any]) -> str:
  """A hash of everything in `config` and its input files that can change a victim's result."""
  record = provenance(config)
  text = json.dumps(record['config'], sort_keys=True, default=repr)
  if record['inputs']:  # runs without input files keep the fingerprint they always had
    text += json.dumps(record['inputs'], sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flat(tree: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flat(v, f'{prefix}{k}.'))
    return out
  return {prefix[:-1]: tree}


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """'field: old → new' for every setting or input that differs between two provenances.

  >>> changes({'config': {'attack': {'steps': 6}}, 'inputs': {}},
  ...         {'config': {'attack': {'steps': 9}}, 'inputs': {'data.path': 'ab12'}})
  ['attack.steps: 6 → 9', 'contents of data.path: none → ab12']
  """
  out = []
  for part, label in (('config', ''), ('inputs', 'contents of ')):
    a, b = _flat(dict(old.get(part, {}))), _flat(dict(new.get(part, {})))
    for key in sorted(set(a) | set(b)):
      if a.get(key) != b.get(key):
        show = lambda v: 'none' if v is None else (v[:8] if label else repr(v))
        out.append(f'{label}{key}: {show(a.get(key))} → {show(b.get(key))}')
  return out


def manifest_path(workdir: str) -> str:
  return os.path.join(workdir, 'chunks', 'manifest.json')


def write_manifest(workdir: str, record: Mapping[str, Any]) -> None:
  """Keeps what the chunks' fingerprint covers, so a later refusal can name a change."""
  os.makedirs(os.path.dirname(manifest_path(workdir)), exist_ok=True)
  def write(tmp: str) -> None:
    with open(tmp, 'w') as f:
      json.dump(record, f, indent=1, sort_keys=True)
  files.atomic_write(manifest_path(workdir), write)


def check_manifest(workdir: str, record: Mapping[str, Any]) -> None:
  """Refuses a workdir whose chunks came from another run, naming what changed."""
  path = manifest_path(workdir)
  if not os.path.exists(path):
    return
  try:
    with open(path) as f:
      old = json.load(f)
  except (OSError, ValueError):
    return  # unreadable: each chunk's own fingerprint still decides
  diff = changes(old, record)
  if diff:
    raise ConfigError(f'{workdir} holds chunks of a different config ({"; ".join(diff[:4])}'
                      f'{"; ..." if len(diff) > 4 else ""}); use a new --workdir, or move its '
                      'chunks/ folder away to recompute.')


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
  if scores.exact_recovered is not None:
    arrays.update(exact_recovered=scores.exact_recovered, exact_recall=scores.exact_recall)
  def write(tmp: str) -> None:
    with open(tmp, 'wb') as f:
      np.savez(f, **arrays)
  files.atomic_write(file, write)


def load(file: str, fingerprint_: str, chunk: Chunk | None = None) -> dict[str, np.ndarray]:
  """One chunk file, verified.

  Raises:
    ConfigError: another run's config or inputs wrote it.
    Damaged: it cannot be read (truncated, empty, not an npz), or it holds
      other victims than `chunk` promises.
  """
  try:
    with np.load(file, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
    raise Damaged(f'{file} cannot be read ({type(e).__name__}: {e})') from None
  if 'fingerprint' not in arrays or 'victim_ids' not in arrays:
    raise Damaged(f'{file} is not a chunk file (no fingerprint or victim_ids)')
  found = str(arrays['fingerprint'])
  if found != fingerprint_:
    raise ConfigError(
        f'{file} was written by a different config (fingerprint {found}, this one '
        f'{fingerprint_}); use a new --workdir, or move its chunks/ folder away to recompute.')
  if chunk is not None and not np.array_equal(arrays['victim_ids'],
                                              np.arange(chunk.start, chunk.stop)):
    raise Damaged(f'{file} holds victims {arrays["victim_ids"].tolist()}, not '
                  f'{chunk.start}..{chunk.stop - 1} as its name says')
  return arrays


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
  if all('exact_recovered' in p for p in parts):  # chunk files from before lack them
    scores = scores._replace(exact_recovered=cat('exact_recovered'),
                             exact_recall=cat('exact_recall'))
  seconds = float(sum(float(p['seconds']) for p in parts))
  return result, truth, scores, seconds
