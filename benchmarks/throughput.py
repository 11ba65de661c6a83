"""Milliseconds per loss-and-gradient evaluation per victim, DLG LeNet 32×32×3.

  python benchmarks/throughput.py [--victims=1,8,64] [--iterations=50] [--block=8]
                                  [--form=compact|two_loop] [--weights=arguments|constants]
                                  [--processes=1,2] [--repeats=3]

Prints, for each number of vmapped victims V:
- eval: one jitted value-and-gradient of the iDLG matching loss (forward,
  weight gradient, backward of the L2 distance) for V victims, divided by V —
  the unit the PyTorch reference is quoted in (≈4.6 ms with one thread here,
  docs/results/throughput.md). Two columns: all V victims vmapped at once, and the V
  victims in blocks of `--block` vmapped victims run one block after the
  other (`lax.map(..., batch_size=block)`, what the attack does: one
  compiled program either way);
- attack: one compiled chunk of L-BFGS iterations (line search included) over
  V victims in blocks of `--block`, divided by V and by the iterations, and
  by the evaluations the line searches counted.
Victims are real photo crops (data.name=photos). Medians of `--repeats`.

`--processes=P` splits the V victims over P worker processes, worker p
pinned to CPU core p (`parallel.pin_cpu_cores`, before JAX starts its
backend, so each XLA runtime sizes its thread pool to one core). The workers compile
on their own, meet at a barrier before every timed phase, and time the same
number of calls side by side; a row's figure is the slowest worker's time
per call divided by all V victims, i.e. the machine's throughput. `1` keeps
one unpinned process with XLA's default threads. Why this matters here:
victims are independent, and on this 2-core machine one XLA process
alternates the kernels of one small program between its two pool threads —
each kernel waits for the previous one, so the cores take turns and the
data migrates between their caches (BUILD_NOTES.md, "Throughput"). Two
pinned processes are how `run.distributed` (parallel.py) spreads victims
over hosts, here over the two cores of one host.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import queue
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import data
from dlg_jax import models
from dlg_jax import parallel
from dlg_jax.attacks import losses
from dlg_jax.attacks import optimize
from dlg_jax.client import gradients
from dlg_jax.client import protocol

FLAGS = flags.FLAGS
flags.DEFINE_list('victims', ['1', '8', '64'], 'Numbers of vmapped victims.')
flags.DEFINE_integer('iterations', 50, 'L-BFGS iterations per timed chunk.')
flags.DEFINE_integer('memory', 100, 'L-BFGS history.')
flags.DEFINE_integer('block', 8, 'Victims per vmapped block (0: all at once).')
flags.DEFINE_enum('form', 'compact', ['compact', 'two_loop'], 'L-BFGS direction (optimize.lbfgs).')
flags.DEFINE_list('processes', ['1', '2'], 'Worker processes the victims are split over, one '
                  'core each (1: one unpinned process); a row per value.')
flags.DEFINE_integer('repeats', 3, 'Timed calls per phase (median taken).')
flags.DEFINE_enum('weights', 'arguments', ['arguments', 'constants'],
                  'Model variables as jit arguments (what the attacks do) or closed over '
                  '(folded into the program as constants, as the attacks did before 2026-11-26).')


def _median_seconds(fn, repeats=3, barrier=None):
  if barrier is not None:
    barrier.wait()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def measure(num_victims: int, iterations: int, memory: int, block: int,
            form: str = 'compact', weights: str = 'arguments', repeats: int = 3,
            barrier: Any = None) -> dict[str, float]:
  """One process's figures for `num_victims` victims (per call, not per victim).

  `barrier` (a multiprocessing.Barrier) lines the timed phases of several
  workers up so that they run side by side.
  """
  photos = data.load({'name': 'photos', 'size': 32, 'channels': 3}, num_victims)
  model = models.build({'name': 'lenet'}, (32, 32, 3), 16)
  variables = model.init(jax.random.key(0))
  images = jnp.asarray(photos.images)[:, None]
  labels = jnp.asarray(photos.labels)[:, None]
  target = jax.vmap(lambda x, y: gradients.batch_gradients(
      model, variables, x, jax.nn.one_hot(y, 16)))(images, labels)
  aux = {'target': target, 'labels': labels}
  loss_fn = functools.partial(losses.matching_loss, model=model, train=True,
                              protocol=protocol.FEDSGD, distance='l2')
  shared = {'variables': variables}
  if weights == 'constants':
    loss_fn, shared = functools.partial(loss_fn, variables=variables), {}
  z = {'image': jax.random.uniform(jax.random.key(1), (num_victims, 1, 1, 32, 32, 3))}

  value_and_grad = lambda z, aux, shared: jax.value_and_grad(loss_fn)(z, aux, **shared)
  evaluate = jax.jit(optimize.vmap_lanes(value_and_grad))
  jax.block_until_ready(evaluate(z, aux, shared))
  eval_s = _median_seconds(lambda: evaluate(z, aux, shared), repeats, barrier)
  one_victim = jax.vmap(value_and_grad, in_axes=(0, None, None))  # over restarts
  blocked = jax.jit(lambda z, aux, shared: jax.lax.map(
      lambda za: one_victim(*za, shared), (z, aux),
      batch_size=min(block or num_victims, num_victims)))
  jax.block_until_ready(blocked(z, aux, shared))
  eval_block_s = _median_seconds(lambda: blocked(z, aux, shared), repeats, barrier)

  opt = optimize.lbfgs(memory, 20, form=form)
  state = jax.jit(optimize.vmap_lanes(functools.partial(optimize.init_lane, opt, loss_fn)))(
      z, aux, shared)
  chunk = optimize.make_chunk(functools.partial(optimize.lbfgs_step, opt, loss_fn, 0.0),
                              iterations, block_victims=block)
  state, _ = chunk(state, aux, shared)  # compile, and leave the first, cheapest iterations
  jax.block_until_ready(state.loss)
  times, evals = [], []
  if barrier is not None:
    barrier.wait()
  for _ in range(repeats):
    before = int(np.sum(state.evaluations))
    start = time.perf_counter()
    state, trace = chunk(state, aux, shared)
    jax.block_until_ready(trace)
    times.append(time.perf_counter() - start)
    evals.append(int(np.sum(state.evaluations)) - before)
  return {'victims': num_victims, 'eval_s': eval_s, 'eval_block_s': eval_block_s,
          'chunk_s': float(np.median(times)), 'evals': float(np.median(evals))}


def _worker(core: int, kwargs: dict[str, Any], barrier: Any, results: Any) -> None:
  parallel.pin_cpu_cores(str(core))  # before JAX starts, as a pinned attack run does
  results.put((core, measure(**kwargs, barrier=barrier)))


def _collect(workers: list[Any], results: Any) -> list[dict[str, float]]:
  """Each worker's figures; a worker that dies stops the others instead of hanging them."""
  parts = []
  try:
    while len(parts) < len(workers):
      try:
        parts.append(results.get(timeout=5)[1])
      except queue.Empty:
        dead = [w.exitcode for w in workers if w.exitcode]
        if dead:
          raise RuntimeError(f'a throughput worker exited with code {dead[0]}; '
                             'rerun with --processes=1 to see its error.') from None
  finally:
    for w in workers:
      if w.is_alive() and len(parts) < len(workers):
        w.terminate()
      w.join()
  return parts


def measure_split(num_victims: int, processes: int, **kwargs: Any) -> dict[str, float]:
  """Throughput of `processes` pinned workers sharing `num_victims` victims.

  Per-victim figures divide the slowest worker's time per call by all the
  victims (the workers run side by side). One process runs here, unpinned.
  """
  if processes == 1:
    parts = [measure(num_victims, **kwargs)]
  else:
    cores = sorted(os.sched_getaffinity(0))
    if num_victims % processes or processes > len(cores):
      raise ValueError(f'{num_victims} victims do not split over {processes} processes '
                       f'on the {len(cores)} usable cores; choose a divisor.')
    ctx = multiprocessing.get_context('spawn')  # a forked JAX runtime is unsafe
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    share = dict(kwargs, num_victims=num_victims // processes)
    workers = [ctx.Process(target=_worker, args=(cores[p], share, barrier, results))
               for p in range(processes)]
    for w in workers:
      w.start()
    parts = _collect(workers, results)
  slowest = {k: max(part[k] for part in parts) for k in ('eval_s', 'eval_block_s', 'chunk_s')}
  evals = sum(part['evals'] for part in parts)
  iterations = kwargs['iterations']
  return {
      'victims': num_victims,
      'processes': processes,
      'eval_ms_per_victim': 1e3 * slowest['eval_s'] / num_victims,
      'eval_block_ms_per_victim': 1e3 * slowest['eval_block_s'] / num_victims,
      'attack_ms_per_iteration_per_victim': 1e3 * slowest['chunk_s'] / iterations / num_victims,
      'attack_ms_per_counted_eval_per_victim': 1e3 * slowest['chunk_s'] / evals,
      'evals_per_iteration': evals / iterations / num_victims,
  }


def main(argv):
  del argv
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, '
        f'{os.cpu_count()} CPU cores; PyTorch DLG reference ≈4.6 ms/eval (docs/results/throughput.md)')
  print(f'{"victims":>7} {"procs":>5} {"eval ms/victim":>15} {"eval, blocks":>13} {"attack ms/it/victim":>20} '
        f'{"attack ms/eval/victim":>22} {"evals/it":>9}   (blocks of {FLAGS.block} victims, '
        f'{FLAGS.form} L-BFGS, weights as {FLAGS.weights})')
  for v in FLAGS.victims:
    for p in FLAGS.processes:
      if int(v) < int(p):
        continue
      r = measure_split(int(v), int(p), iterations=FLAGS.iterations, memory=FLAGS.memory,
                        block=FLAGS.block, form=FLAGS.form, weights=FLAGS.weights,
                        repeats=FLAGS.repeats)
      print(f'{r["victims"]:>7} {r["processes"]:>5} {r["eval_ms_per_victim"]:>15.3f} '
            f'{r["eval_block_ms_per_victim"]:>13.3f} '
            f'{r["attack_ms_per_iteration_per_victim"]:>20.3f} '
            f'{r["attack_ms_per_counted_eval_per_victim"]:>22.3f} '
            f'{r["evals_per_iteration"]:>9.2f}', flush=True)


if __name__ == '__main__':
  app.run(main)
