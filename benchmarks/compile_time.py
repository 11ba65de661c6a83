"""Compile time of one model's matching-loss programs, cold or warm.

  python benchmarks/compile_time.py --model=densenet121 --size=32 --program=grad [--scan_layers=6]
  python benchmarks/compile_time.py --model=vit_small --size=32 --program=grad --options=scan_blocks=True
  python benchmarks/compile_time.py --model=densenet121 --size=224 --program=lbfgs --iterations=2
  python benchmarks/compile_time.py --model=densenet121 --size=224 --program=lbfgs --cache=/tmp/c  # twice: warm

Without `--cache` the persistent compilation cache is off (a cold compile);
with it, the cache and the stored traced programs (`dlg_jax.attacks.stored`)
live in that folder, so a second run with the same folder measures the warm
start (reading the traced program, lowering a call to it and loading the
cached executable).

`grad`: one `jax.jit(jax.value_and_grad)` of the L2 matching loss (a double
backward: the client's gradient, then ∇ of the distance), printing its
StableHLO size, lowering and compile seconds and one evaluation.
`lbfgs`: the attack's own programs (`solvers.programs('lbfgs', ...)`, as the
models study runs them): the init, the chunk's lowering and compile, then
the start point's evaluation and `--iterations` iterations. Sigmoid, BatchNorm in
train mode, one image, random weights: Khowaja's study
(configs/models_study.py). Results: docs/results/throughput.md.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import matching_problem  # pylint: disable=g-import-not-at-top,wrong-import-position
from dlg_jax import models
from dlg_jax import runner
from dlg_jax.attacks import solvers
from dlg_jax.attacks import stored

_MODEL = flags.DEFINE_string('model', 'densenet121', 'Zoo model name.')
_SIZE = flags.DEFINE_integer('size', 32, 'Image side.')
_PROGRAM = flags.DEFINE_enum('program', 'grad', ['grad', 'lbfgs'], 'What to compile.')
_SCAN = flags.DEFINE_integer('scan_layers', -1, 'DenseNet segment length (-1: the default).')
_ACT = flags.DEFINE_string('act', 'sigmoid', 'Activation (the study\'s sigmoid); "" for a '
                           'model without the option (MobileNetV2).')
_OPTIONS = flags.DEFINE_string('options', '', 'More model options, as model.options '
                               '(e.g. "scan_blocks=False" for the ViT).')
_ITERATIONS = flags.DEFINE_integer('iterations', 2, 'lbfgs: iterations run after compiling.')
_DISTANCE = flags.DEFINE_enum('distance', 'l2', ['l2', 'cosine'],
                               'Matching distance (cosine: IG\'s, without TV).')
_CACHE = flags.DEFINE_string('cache', '', 'Persistent compilation cache folder ("": off, cold).')
_STORE = flags.DEFINE_bool('store', True, 'With --cache: keep the traced programs too '
                           '(dlg_jax.attacks.stored); --nostore measures the XLA cache alone.')


def _timed(fn):
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - start


def main(argv):
  del argv
  if _CACHE.value:
    runner.use_compilation_cache(_CACHE.value)  # as a run's `run.compilation_cache`
    if not _STORE.value:
      stored.cache_folder = lambda: ''
  else:
    jax.config.update('jax_enable_compilation_cache', False)
  options = {'name': _MODEL.value, **({'act': _ACT.value} if _ACT.value else {})}
  if _SCAN.value >= 0:
    options['scan_layers'] = _SCAN.value
  options.update(models.parse_options(_OPTIONS.value))
  problem = matching_problem.build(options, _SIZE.value, 10)
  variables = problem.variables
  target = matching_problem.shared_gradient(problem, train=True)
  loss = matching_problem.loss_function(problem.model, distance=_DISTANCE.value, train=True)
  labels = problem.label
  name = f'{_MODEL.value} {_SIZE.value} px {options}'
  if _PROGRAM.value == 'grad':
    fn = jax.jit(jax.value_and_grad(lambda z, aux, v: loss(z, aux, variables=v)))
    args = ({'image': problem.dummy}, {'target': target, 'labels': labels}, variables)
    lowered, t_lower = _timed(lambda: fn.lower(*args))
    compiled, t_compile = _timed(lowered.compile)
    _, t_eval = _timed(lambda: compiled(*args))
    print(f'{name}: {lowered.as_text().count(chr(10))} StableHLO lines, lower {t_lower:.1f} s, '
          f'compile {t_compile:.1f} s, one evaluation {t_eval:.2f} s')
    return
  config = {**solvers.LBFGS_DEFAULTS, 'chunk': _ITERATIONS.value, 'block_victims': 0}
  programs = solvers.programs('lbfgs', loss, config)
  aux = {'target': jax.tree.map(lambda a: a[None], target), 'labels': labels[None]}
  z = {'image': problem.dummy[None, None]}
  shared = {'variables': variables}
  state, t_init = _timed(lambda: programs.init(z, aux, shared))
  if _CACHE.value:
    # Through the stored programs (`attacks.stored`), as a run calls them:
    # the first call reads or traces, lowers, compiles and runs; the second runs.
    (state, _), t_first = _timed(lambda: programs.chunk(state, aux, shared))
    (state, _), t_again = _timed(lambda: programs.chunk(state, aux, shared))
    print(f'{name}: init {t_init:.1f} s (with its run), first chunk {t_first:.1f} s, '
          f'second {t_again:.1f} s: the chunk\'s start {t_first - t_again:.1f} s')
    return
  chunk = getattr(programs.chunk, '__wrapped__', programs.chunk)  # the jitted chunk itself
  traced, t_trace = _timed(lambda: chunk.trace(state, aux, shared))
  lowered, t_lower = _timed(traced.lower)
  compiled, t_compile = _timed(lowered.compile)
  (state, _), t_run = _timed(lambda: compiled(state, aux, shared))
  # The chunk's first step evaluates the start point (a lazy start,
  # `optimize.init_lane(evaluate=False)`); it is not one of the iterations.
  print(f'{name}: init {t_init:.1f} s, chunk trace {t_trace:.1f} s + lower {t_lower:.1f} s + '
        f'compile {t_compile:.1f} s; the start point + {_ITERATIONS.value} iterations '
        f'{t_run:.1f} s ({int(state.evaluations.sum())} evaluations)')


if __name__ == '__main__':
  app.run(main)
