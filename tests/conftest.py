"""Test-session settings: compile fast, and share compiled programs between tests.

The suite's time is nearly all XLA compilation of small programs that then
run for a few iterations, so XLA's optimisation passes are switched off
(`jax_disable_most_optimizations`; the batch and FedAvg smoke tests: 110 s →
70 s cold, BUILD_NOTES.md "Tests"). The environment variable carries the
setting to the tests' subprocesses (launch.py, the sharded-device run).
What the tests assert does not depend on it: results agree with the
optimised programs to float rounding, and bitwise comparisons compare runs
made under the same setting.

JAX's persistent compilation cache turns the second compile of an identical
program (same attack step in several tests) into a disk read.
"""

import os
import tempfile

os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from dlg_jax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position

# Under pytest-xdist (`-n 2`), each worker runs on a core of its own, pinned
# before JAX starts its backend: small programs run faster on one pinned
# thread than spread over a pool (parallel.pin_cpu_cores), and the workers
# do not take each other's core (BUILD_NOTES.md, "Tests").
_WORKER = os.environ.get('PYTEST_XDIST_WORKER', '')
if _WORKER.startswith('gw') and hasattr(os, 'sched_getaffinity'):
  _cores = sorted(os.sched_getaffinity(0))
  if int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '0')) <= len(_cores):
    parallel.pin_cpu_cores(str(_cores[int(_WORKER[2:]) % len(_cores)]))

jax.config.update('jax_disable_most_optimizations',
                  os.environ['JAX_DISABLE_MOST_OPTIMIZATIONS'] not in ('0', 'false', 'False'))
jax.config.update('jax_compilation_cache_dir',
                  os.environ.get('DLG_JAX_TEST_CACHE',
                                 os.path.join(tempfile.gettempdir(), 'dlg_jax_test_jit_cache')))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
