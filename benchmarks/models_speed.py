"""Like-with-like speed of the zoo's attack steps: dlg_jax vs a PyTorch reference.

  python benchmarks/models_speed.py [--models=resnet18_cifar,dlg_lenet] [--steps=ig,dlg]
      [--blocks=1,4,16] [--two_core_blocks=1,4,16] [--repeats=2]
      [--out=docs/results/models_speed.md,/tmp/models_speed.json,/tmp/models_speed.csv]

For each zoo model at the input size its study uses (`SPECS`) and each kind
of attack step (`STEPS`):

* ig: Inverting Gradients' iteration (Geiping et al. 2020): 1 − cosine of the
  parameter gradients + 1e-4 × TV, Adam (lr 0.1) on the sign of ∇x, pixels
  boxed to [0, 1]; BatchNorm in eval mode (their threat model).
* dlg: DLG's / Khowaja's iteration (Zhu et al. 2019): squared L2 of the
  gradients, L-BFGS (memory 100); BatchNorm in train mode (the models
  study's threat model). dlg_jax: one optax L-BFGS update with its
  backtracking line search (1+ evaluations); PyTorch: `LBFGS.step()` with
  DLG's settings (lr 1, history 100, no line search), one evaluation per
  inner iteration. Compare DLG per *evaluation*.

Both use fixed, known one-hot labels (the studies recover them first), one
image per victim, FedSGD, random weights (`Model.init` with key 0), no input
normalisation layer (the same on both sides).

What it measures, each in its own subprocess, one after the other:

1. torch (when installed): the gradient check (`torch_reference.check_gradients`:
   ∇x of the matching loss in torch vs dlg_jax, float64, relative to the
   largest entry, <= 1e-4); a failed check stops that row (nothing is timed).
   Then the PyTorch step, pinned to core 0, `torch.set_num_threads(1)`.
2. dlg_jax on core 0 (`os.sched_setaffinity` before the process starts, so
   XLA's pool has one core; `--one_thread_flags=1` adds XLA flags for one
   thread, which slow convolutions down, see ONE_CORE_FLAGS) with a fresh
   persistent compilation cache: compile seconds cold (the first call of
   the init program and of one chunk, less a second call: trace or read
   the stored program, lower, compile), then seconds per iteration
   per victim for the first block size; a second process with the same cache
   gives the warm compile seconds; then the other block sizes; then the
   PyTorch step again on core 0 (`--torch_after`, the figure is the mean).
3. dlg_jax unpinned with XLA's default threads ("both cores").

The JAX side is the project's code path (the problem: `matching_problem.py`):
`models.build`, `protocol.observe` for the shared gradient,
`losses.MatchingLoss`, `optimize.init_lane`,
`optimize.first_order_step` with `solvers.adam` / `signed_image_grad` /
`box`, or `optimize.lbfgs_step` with `optimize.lbfgs` (the solvers'
defaults), all in `optimize.make_chunk` (one compiled chunk of N
iterations over a vmapped block of V victims). Seconds per victim-iteration =
median wall of a chunk / (N × V), after one untimed chunk.

Headline: ratio = PyTorch seconds per iteration (DLG: per evaluation) ÷ the
best dlg_jax one-core seconds per victim-iteration (evaluation) over block
sizes; > 1 means dlg_jax is faster.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# Model -> its zoo config, input size and classes as its study uses them;
# iters: iterations per timed dlg_jax chunk; torch_iters: timed PyTorch IG
# iterations; torch_calls / torch_max_iter: timed `LBFGS.step()` calls and
# their inner iterations (DLG's 20 where affordable). A chunk call has a
# fixed cost besides its iterations (0.3-0.4 s on DenseNet-121 at 224 px, one
# core, 60 ms of it copying L-BFGS's 100-step history); a run's chunks are 100
# iterations long, so a one-iteration chunk overstates the iteration (1.35-1.58
# s against 0.98 s in a chunk of 3, 2026-12-04).
SPECS: dict[str, dict[str, Any]] = {
    'dlg_lenet': dict(config={'name': 'lenet', 'act': 'sigmoid'}, size=32, classes=100,
                      iters=50, torch_iters=50, torch_calls=5, torch_max_iter=20),
    'lenet5': dict(config={'name': 'lenet5'}, size=32, classes=10,
                   iters=50, torch_iters=50, torch_calls=5, torch_max_iter=20),
    'mlp': dict(config={'name': 'mlp'}, size=32, classes=10,
                iters=20, torch_iters=20, torch_calls=2, torch_max_iter=20),
    'resnet18_cifar': dict(config={'name': 'resnet18', 'stem': 'cifar'}, size=32, classes=10,
                           iters=3, torch_iters=5, torch_calls=1, torch_max_iter=5),
    'resnet18_224': dict(config={'name': 'resnet18', 'stem': 'imagenet', 'act': 'sigmoid'},
                         size=224, classes=1000, iters=2, torch_iters=3, torch_calls=1,
                         torch_max_iter=3),
    'densenet121': dict(config={'name': 'densenet121', 'act': 'sigmoid'}, size=224,
                        classes=1000, iters=3, torch_iters=2, torch_calls=1, torch_max_iter=2),
    'inception_v3': dict(config={'name': 'inception_v3', 'act': 'sigmoid'}, size=299,
                         classes=1000, iters=3, torch_iters=2, torch_calls=1, torch_max_iter=2),
    'mobilenet_v2': dict(config={'name': 'mobilenet_v2'}, size=224, classes=1000,
                         iters=2, torch_iters=3, torch_calls=1, torch_max_iter=3),
    'vit_small': dict(config={'name': 'vit_small'}, size=32, classes=10,
                      iters=5, torch_iters=5, torch_calls=1, torch_max_iter=5),
}

STEPS: dict[str, dict[str, Any]] = {
    'ig': dict(distance='cosine', tv=1e-4, train=False),
    'dlg': dict(distance='l2', tv=0.0, train=True),
}

# XLA flags that make a pinned process single-threaded. Off by default
# (--one_thread_flags=1 turns them on): on ResNet-18 IG they made dlg_jax's
# one-core iteration 2.6× slower (2.23 vs 0.87 s, both pinned to one core,
# 2026-12-03), so they measure a slower XLA path, not the one core. Pinning
# alone already sizes XLA's thread pool to the one core (parallel.pin_cpu_cores),
# which is what dlg_jax's own `run.cpu_cores` does.
ONE_CORE_FLAGS = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
PINNED_CORE = 0
_SETTINGS = {'one_thread_flags': False}


# ---------------------------------------------------------------- workers

def _programs(step_kind: str, iters: int, loss_fn):
  """The solver's own (init, chunk): every victim in one vmap, no lane stops (tol 0)."""
  from dlg_jax.attacks import solvers  # pylint: disable=g-import-not-at-top
  solver = 'adam' if step_kind == 'ig' else 'lbfgs'
  config = {**solvers.DEFAULTS[solver], 'chunk': iters, 'block_victims': 0, 'tol': 0.0}
  programs = solvers.programs(solver, loss_fn, config)
  return programs.init, programs.chunk


def jax_worker(job: dict[str, Any]) -> dict[str, Any]:
  """Compile (and unless `compile_only`, time) one dlg_jax chunk; runs in its own process."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  if job.get('cache'):
    jax.config.update('jax_compilation_cache_dir', job['cache'])
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  from benchmarks import matching_problem  # pylint: disable=g-import-not-at-top
  spec, kind = SPECS[job['model']], STEPS[job['step']]
  victims, iters = int(job['block']), int(job['iters'])
  problem = matching_problem.build(spec['config'], spec['size'], spec['classes'])
  target = matching_problem.shared_gradient(problem, train=kind['train'])
  loss_fn = matching_problem.loss_function(problem.model, **kind)
  dummy, label = problem.dummy, problem.label
  init, chunk = _programs(job['step'], iters, loss_fn)
  rng = np.random.default_rng(1)
  z0 = {'image': np.concatenate(
      [dummy[None, None], rng.uniform(size=(victims - 1, 1, *dummy.shape)).astype(np.float32)]
  )[:victims]}
  aux = {'target': jax.tree.map(lambda g: np.repeat(np.asarray(g)[None], victims, 0), target),
         'labels': np.repeat(label[None], victims, 0)}
  shared = {'variables': problem.variables}
  jax.block_until_ready((z0, aux, shared))
  # Compile seconds as a run pays them: the first call (which reads or
  # traces the program, lowers, compiles or loads it, and runs it) less a
  # second call of the same program (the run alone).
  def timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start

  state, init_first = timed(init, z0, aux, shared)
  _, init_again = timed(init, z0, aux, shared)
  (state, trace), chunk_first = timed(chunk, state, aux, shared)
  (state, trace), chunk_again = timed(chunk, state, aux, shared)
  init_s, chunk_s = max(init_first - init_again, 0.0), max(chunk_first - chunk_again, 0.0)
  out = {'compile_s': init_s + chunk_s, 'init_compile_s': init_s, 'chunk_compile_s': chunk_s,
         'block': victims, 'iters': iters, 'cores': job['cores']}
  if job.get('compile_only'):
    return out
  out['first_chunk_s'] = chunk_again
  walls, evals = [], []
  for _ in range(int(job['repeats'])):
    before = int(np.sum(state.evaluations))
    start = time.perf_counter()
    state, trace = chunk(state, aux, shared)
    jax.block_until_ready(trace)
    walls.append(time.perf_counter() - start)
    evals.append(int(np.sum(state.evaluations)) - before)
  wall = statistics.median(walls)
  evals_per_iter = statistics.mean(evals) / (iters * victims)
  out.update(walls=walls, s_per_iter=wall / (iters * victims), evals_per_iter=evals_per_iter,
             s_per_eval=wall / (iters * victims) / max(evals_per_iter, 1e-9),
             final_loss=float(np.nanmean(np.asarray(trace)[..., -1])))
  return out


def torch_worker(job: dict[str, Any]) -> dict[str, Any]:
  """The gradient check, then (if it passes) the PyTorch step, one thread."""
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks import matching_problem  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(1)
  spec, kind = SPECS[job['model']], STEPS[job['step']]
  start = time.perf_counter()
  try:
    if job.get('checked'):  # passed earlier in this row: time the same problem again
      p = matching_problem.build(spec['config'], spec['size'], spec['classes'])
      module = torch_reference.from_flax(spec['config'], p.model.input_shape, spec['classes'],
                                         p.variables, kind['train'])
      target, _, _ = torch_reference.torch_side(module, p.truth, p.dummy, p.label,
                                                distance=kind['distance'], tv=kind['tv'])
      check = {'ok': True, '_module': module, '_target': target, '_dummy': p.dummy,
               '_label': p.label}
    else:
      check = torch_reference.check_gradients(spec['config'], spec['size'], spec['classes'],
                                              **kind)
  except torch_reference.NotMirrored as e:
    return {'mirrored': False, 'reason': str(e), 'torch': torch.__version__}
  out = {'mirrored': True, 'torch': torch.__version__, 'check_s': time.perf_counter() - start,
         **{k: v for k, v in check.items() if not k.startswith('_')}}
  if not check['ok'] or job.get('check_only'):
    return out
  module, target = check['_module'], check['_target']
  x0 = torch.from_numpy(check['_dummy']).permute(0, 3, 1, 2).contiguous()
  labels = torch.from_numpy(check['_label']).long()
  if job['step'] == 'ig':
    step = torch_reference.IGStep(module, x0, labels, target, tv=kind['tv'])
    timing = torch_reference.time_steps(step, int(spec['torch_iters']))
  else:
    step = torch_reference.DLGStep(module, x0, labels, target,
                                   max_iter=int(spec['torch_max_iter']))
    timing = torch_reference.time_steps(step, int(spec['torch_calls']))
  out.update({f'torch_{k}': v for k, v in timing.items()})
  return out


# ---------------------------------------------------------------- the driver

def _spawn(kind: str, job: dict[str, Any], *, pinned: bool, timeout: float) -> dict[str, Any]:
  """Runs a worker in a fresh process; pinned: core 0 and one-thread XLA flags."""
  env = dict(os.environ)
  if pinned:
    if _SETTINGS['one_thread_flags']:
      env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' ' + ONE_CORE_FLAGS).strip()
    env['OMP_NUM_THREADS'] = '1'
  preexec = (lambda: os.sched_setaffinity(0, {PINNED_CORE})) if pinned else None
  cmd = [sys.executable, os.path.abspath(__file__), f'--worker={kind}', '--job=' + json.dumps(job)]
  start = time.perf_counter()
  try:
    proc = subprocess.run(cmd, env=env, preexec_fn=preexec, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, check=False)
  except subprocess.TimeoutExpired:
    return {'error': f'timed out after {timeout:.0f} s'}
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith('RESULT '):
      result = json.loads(line[len('RESULT '):])
      result['process_s'] = time.perf_counter() - start
      return result
  tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
  return {'error': f'exit {proc.returncode}: ' + ' | '.join(tail)[-300:]}


def torch_available() -> str | None:
  """The installed torch version, or None (found without importing it here)."""
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  try:
    return importlib.metadata.version('torch')
  except importlib.metadata.PackageNotFoundError:
    return None


def measure(model: str, step: str, args, log) -> dict[str, Any]:
  """One table row: check, torch timing, dlg_jax compile and timings."""
  spec = SPECS[model]
  row: dict[str, Any] = {'model': model, 'step': step, 'size': spec['size']}
  iters = args.iters or spec['iters']
  if torch_available():
    log(f'{model} {step}: torch check and step (core {PINNED_CORE}, 1 thread)')
    row['torch'] = _spawn('torch', {'model': model, 'step': step}, pinned=True,
                          timeout=args.timeout)
    t = row['torch']
    if 'error' in t or not t.get('mirrored'):
      row['note'] = t.get('error') or t.get('reason')
    elif not t['ok']:
      row['note'] = (f"gradient check failed (rel. err {t['grad_rel_err']:.2e}): "
                     'nothing timed')
      return row
  else:
    row['torch'] = {'error': 'torch not installed (pip install -r requirements-bench.txt)'}
  with tempfile.TemporaryDirectory(prefix='models_speed_cache_') as cache:
    row['jax1'], row['jax2'] = {}, {}
    for i, block in enumerate(args.blocks):
      log(f'{model} {step}: dlg_jax 1 core, block {block}' + (' (cold cache)' if i == 0 else ''))
      job = {'model': model, 'step': step, 'block': block, 'iters': iters,
             'repeats': args.repeats, 'cores': 1, 'cache': cache}
      row['jax1'][block] = _spawn('jax', job, pinned=True, timeout=args.timeout)
      if i == 0:
        log(f'{model} {step}: dlg_jax 1 core, block {block}, warm cache (compile only)')
        row['warm'] = _spawn('jax', {**job, 'compile_only': True}, pinned=True,
                             timeout=args.timeout)
    if args.torch_after and row['torch'].get('ok'):
      log(f'{model} {step}: torch step again (core {PINNED_CORE}, 1 thread)')
      row['torch_after'] = _spawn('torch', {'model': model, 'step': step, 'checked': True},
                                  pinned=True, timeout=args.timeout)
    for block in args.two_core_blocks:
      log(f'{model} {step}: dlg_jax both cores, block {block}')
      job = {'model': model, 'step': step, 'block': block, 'iters': iters,
             'repeats': args.repeats, 'cores': 'all', 'cache': ''}
      row['jax2'][block] = _spawn('jax', job, pinned=False, timeout=args.timeout)
  return row


# ---------------------------------------------------------------- tables

def _fmt(x: float | None, digits: int = 3) -> str:
  if x is None:
    return '—'
  if x >= 100:
    return f'{x:.0f}'
  return f'{x:.{digits}g}'


def _best(runs: dict[Any, dict[str, Any]], key: str) -> tuple[float | None, Any]:
  good = [(r[key], b) for b, r in runs.items() if key in r]
  return min(good) if good else (None, None)


def flatten(row: dict[str, Any], blocks, two_core_blocks) -> dict[str, Any]:
  """The row's table fields (seconds; None where not measured)."""
  # Block keys are ints here and strings after a JSON round trip (--from_json).
  row = {**row, 'jax1': {int(b): r for b, r in row.get('jax1', {}).items()},
         'jax2': {int(b): r for b, r in row.get('jax2', {}).items()}}
  t = row.get('torch', {})
  dlg = row['step'] == 'dlg'
  unit = 's_per_eval' if dlg else 's_per_iter'
  out = {'model': row['model'], 'size': row['size'], 'step': row['step']}
  out['check_rel_err'] = t.get('grad_rel_err')
  out['f32_jax_err'], out['f32_torch_err'] = t.get('f32_jax_err'), t.get('f32_torch_err')
  first = row.get('jax1', {}).get(blocks[0], {}) if blocks else {}
  out['compile_cold_s'] = first.get('compile_s')
  out['compile_warm_s'] = row.get('warm', {}).get('compile_s')
  for b in blocks:
    r = row.get('jax1', {}).get(b, {})
    out[f'jax_1core_b{b}_s_per_iter'] = r.get('s_per_iter')
    out[f'jax_1core_b{b}_s_per_eval'] = r.get('s_per_eval')
  for b in two_core_blocks:
    out[f'jax_2cores_b{b}_s_per_iter'] = row.get('jax2', {}).get(b, {}).get('s_per_iter')
  best, best_block = _best(row.get('jax1', {}), unit)
  out['jax_best_1core'] = best
  out['jax_best_block'] = best_block
  out['jax_evals_per_iter'] = row.get('jax1', {}).get(best_block, {}).get('evals_per_iter')
  after = row.get('torch_after', {})
  for key in ('s_per_iter', 's_per_eval'):
    runs = [x[f'torch_{key}'] for x in (t, after) if f'torch_{key}' in x]
    out[f'torch_{key}'] = statistics.mean(runs) if runs else None
    out[f'torch_{key}_runs'] = runs
  ref = out[f'torch_{unit}']
  out['ratio'] = ref / best if ref and best else None
  out['ratio_unit'] = 'evaluation' if dlg else 'iteration'
  errors = [f'{k}: {v["error"]}' for k, v in
            [('torch', t), ('torch after', after), *[(f'jax b{b}', r) for b, r in row.get('jax1', {}).items()],
             *[(f'jax 2c b{b}', r) for b, r in row.get('jax2', {}).items()]]
            if isinstance(v, dict) and 'error' in v]
  runs = out[f'torch_{unit}_runs']
  if len(runs) > 1:
    errors.append('PyTorch before/after: ' + ' / '.join(_fmt(x) for x in runs))
  out['note'] = '; '.join(filter(None, [row.get('note'), *errors])) or ''
  return out


def markdown(rows: list[dict[str, Any]], blocks, two_core_blocks) -> str:
  head = (['model', 'px', 'step', 'check (f64 rel. err)', 'compile cold s', 'compile warm s']
          + [f'dlg_jax 1 core b={b}' for b in blocks]
          + [f'dlg_jax 2 cores b={b}' for b in two_core_blocks]
          + ['dlg_jax evals/it', 'dlg_jax best 1 core /eval', 'PyTorch 1 core /it',
             'PyTorch /eval', 'ratio PyTorch ÷ dlg_jax', 'note'])
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  for r in rows:
    check = '—' if r['check_rel_err'] is None else f"{r['check_rel_err']:.1e}"
    cells = [r['model'], str(r['size']), r['step'], check, _fmt(r['compile_cold_s']),
             _fmt(r['compile_warm_s'])]
    cells += [_fmt(r[f'jax_1core_b{b}_s_per_iter']) for b in blocks]
    cells += [_fmt(r[f'jax_2cores_b{b}_s_per_iter']) for b in two_core_blocks]
    cells += [_fmt(r['jax_evals_per_iter']),
              _fmt(r[f"jax_1core_b{r['jax_best_block']}_s_per_eval"]
                   if r['jax_best_block'] is not None else None),
              _fmt(r['torch_s_per_iter']), _fmt(r['torch_s_per_eval']),
              ('—' if r['ratio'] is None else
               f"{r['ratio']:.2f} (per {r['ratio_unit']}, b={r['jax_best_block']})"),
              r['note'].replace('|', '/')]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def write(path: str, rows: list[dict[str, Any]], raw: list[dict[str, Any]], meta, blocks,
          two_core_blocks) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if path.endswith('.json'):
    text = json.dumps({'meta': meta, 'rows': rows, 'raw': raw}, indent=1, default=str)
  elif path.endswith('.csv'):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ['model'])
    writer.writeheader()
    writer.writerows(rows)
    text = buf.getvalue()
  else:
    text = (f"Measured {meta['date']} on {meta['machine']}; `{meta['command']}`.\n"
            f"Seconds per iteration per victim (DLG's evaluation columns: per "
            f"loss-and-gradient evaluation).\n\n" + markdown(rows, blocks, two_core_blocks))
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--worker', default='', help=argparse.SUPPRESS)
  parser.add_argument('--job', default='', help=argparse.SUPPRESS)
  parser.add_argument('--models', default='resnet18_cifar,dlg_lenet',
                      help=f'comma-separated, from {sorted(SPECS)}, or "all"')
  parser.add_argument('--steps', default='ig,dlg', help='comma-separated: ig, dlg')
  parser.add_argument('--blocks', default='1,4,16', help='victims per vmapped block, one core')
  parser.add_argument('--two_core_blocks', default='1,4,16',
                      help='block sizes run unpinned with default threads ("" for none)')
  parser.add_argument('--iters', type=int, default=0,
                      help='iterations per timed chunk (0: the model\'s own, SPECS)')
  parser.add_argument('--repeats', type=int, default=2, help='timed chunks (median)')
  parser.add_argument('--timeout', type=float, default=3600, help='seconds per subprocess')
  parser.add_argument('--torch_after', type=int, default=1,
                      help='1: time the PyTorch step again after the one-core dlg_jax runs '
                      '(the figure is the mean of both, bracketing load changes)')
  parser.add_argument('--out', default='', help='comma-separated .md / .csv / .json paths')
  parser.add_argument('--one_thread_flags', type=int, default=0,
                      help=f'1: pinned dlg_jax processes also get XLA_FLAGS="{ONE_CORE_FLAGS}" '
                      '(slower on convolutions; see ONE_CORE_FLAGS)')
  parser.add_argument('--from_json', default='',
                      help='comma-separated JSON files of earlier runs: print (and --out) '
                      'their rows as one table, measuring nothing')
  args = parser.parse_args(argv)

  if args.worker:
    job = json.loads(args.job)
    result = jax_worker(job) if args.worker == 'jax' else torch_worker(job)
    print('RESULT ' + json.dumps(result, default=float), flush=True)
    return

  args.blocks = [int(b) for b in args.blocks.split(',') if b]
  args.two_core_blocks = [int(b) for b in args.two_core_blocks.split(',') if b]
  _SETTINGS['one_thread_flags'] = bool(args.one_thread_flags)
  if args.from_json:
    raw, metas = [], []
    for path in args.from_json.split(','):
      with open(path, encoding='utf-8') as f:
        data = json.load(f)
      raw += data['raw']
      metas.append(data['meta'])
    rows = [flatten(r, args.blocks, args.two_core_blocks) for r in raw]
    meta = {**metas[0], 'command': ' ; '.join(m['command'] for m in metas)}
    print(markdown(rows, args.blocks, args.two_core_blocks))
    for path in filter(None, args.out.split(',')):
      write(path, rows, raw, meta, args.blocks, args.two_core_blocks)
    return

  models = sorted(SPECS) if args.models == 'all' else [m for m in args.models.split(',') if m]
  steps = [s for s in args.steps.split(',') if s]
  for name in models:
    if name not in SPECS:
      parser.error(f'unknown model {name!r}; choose from {sorted(SPECS)}')
  for s in steps:
    if s not in STEPS:
      parser.error(f'unknown step {s!r}; choose from {sorted(STEPS)}')
  meta = {'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
          'command': 'python benchmarks/models_speed.py ' + ' '.join(sys.argv[1:] if argv is None
                                                                      else argv),
          'machine': f'{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start',
          'torch': torch_available(),
          'pinned': f'core {PINNED_CORE} by sched_setaffinity'
                    + (f', XLA_FLAGS={ONE_CORE_FLAGS}' if args.one_thread_flags else '')}
  log = lambda msg: print(f'[{time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)
  raw, rows = [], []
  for name in models:
    for s in steps:
      row = measure(name, s, args, log)
      row['load_after'] = os.getloadavg()[0]
      raw.append(row)
      rows.append(flatten(row, args.blocks, args.two_core_blocks))
      for path in filter(None, args.out.split(',')):
        write(path, rows, raw, meta, args.blocks, args.two_core_blocks)
  meta['load_end'] = os.getloadavg()[0]
  print(markdown(rows, args.blocks, args.two_core_blocks))
  for path in filter(None, args.out.split(',')):
    write(path, rows, raw, meta, args.blocks, args.two_core_blocks)


if __name__ == '__main__':
  main()
