"""The victim axis across devices and hosts: a one-axis mesh, nothing inside it.

Victims are independent, so the only parallelism the lab needs is to split
the leading victim axis of a chunk's data over the local devices
(`NamedSharding(mesh, P('victims'))`) and let `jax.jit` propagate that
sharding through the client and the attack; no code inside an attack knows
about devices. `rounds` fixes how many victims each device takes at once
(`run.device_victims`), so that every device compiles and runs the program of
that block size whatever the device count, and a victim's numbers are
bitwise those of a one-device run. Across hosts, each process runs its own
share of the chunks on its own devices (`share`): victims never need to talk
to each other, so no cross-host collective is compiled, and the only
coordination is process 0 waiting for the other processes' chunk files
before it writes the report.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

from absl import logging
import jax
import numpy as np

from dlg_jax.errors import ConfigError
from dlg_jax.types import PyTree

AXIS = 'victims'


def victim_mesh(devices: list[jax.Device] | None = None) -> jax.sharding.Mesh:
  """A one-axis mesh ('victims',) over `devices` (default: this process's)."""
  devices = list(devices or jax.local_devices())
  # Auto axis type: jit propagates the sharding instead of requiring every
  # intermediate to be annotated (explicit-mode meshes reject unannotated ops).
  return jax.make_mesh((len(devices),), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def pad_to_devices(ids: np.ndarray, mesh: jax.sharding.Mesh) -> np.ndarray:
  """`ids` padded to a multiple of the mesh size by repeating the last one.

  A repeated victim runs exactly the lanes of the original (same global
  index, same key), so padding changes no result; callers drop the copies.
  """
  size = mesh.devices.size
  extra = (-len(ids)) % size
  return np.concatenate([ids, np.repeat(ids[-1:], extra)]) if extra else ids


def rounds(ids: np.ndarray, mesh: jax.sharding.Mesh, device_victims: int) -> list[np.ndarray]:
  """`ids` cut into rounds of `device_victims` victims per device.

  Every round holds `device_victims × mesh size` victims (the last one padded
  by repeating the last victim, see `pad_to_devices`), so each device always
  runs the program compiled for a block of `device_victims` victims: the
  same program on 1, 2 or 4 devices, hence bitwise the same per-victim
  results (XLA picks kernels, and with them float summation orders, by
  shape). `device_victims=0` is one round of all `ids` split evenly over the
  devices: fewest rounds, but the per-device block then depends on the
  device count and results agree only to float rounding.

  >>> mesh = victim_mesh(jax.local_devices()[:1])
  >>> [r.tolist() for r in rounds(np.arange(5), mesh, 2)]
  [[0, 1], [2, 3], [4, 4]]
  >>> [r.tolist() for r in rounds(np.arange(5), mesh, 0)]
  [[0, 1, 2, 3, 4]]
  """
  if device_victims < 0:
    raise ConfigError(f'run.device_victims must be >= 0, got {device_victims}.')
  if not device_victims:
    return [pad_to_devices(ids, mesh)]
  size = device_victims * mesh.devices.size
  extra = (-len(ids)) % size
  padded = np.concatenate([ids, np.repeat(ids[-1:], extra)]) if extra else ids
  return [padded[s:s + size] for s in range(0, len(padded), size)]


def shard_victims(tree: PyTree, mesh: jax.sharding.Mesh) -> PyTree:
  """Places every leaf with its leading (victim) axis split over `mesh`."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  return jax.device_put(tree, sharding)


def share(num_items: int, process_index: int, process_count: int) -> list[int]:
  """The items (chunk indices) process `process_index` runs: round robin.

  >>> share(5, 1, 2)
  [1, 3]
  """
  return list(range(process_index, num_items, process_count))


def parse_cores(spec: str) -> set[int]:
  """CPU cores from '0', '0-3' or '0,2,5-7' ('' = none).

  >>> sorted(parse_cores('0,2-3'))
  [0, 2, 3]
  """
  cores = set()
  try:
    for part in filter(None, (p.strip() for p in str(spec).split(','))):
      lo, _, hi = part.partition('-')
      cores.update(range(int(lo), int(hi or lo) + 1))
  except ValueError:
    raise ConfigError(f"run.cpu_cores must look like '0', '0-3' or '0,2', got {spec!r}.") from None
  return cores


def pin_cpu_cores(spec: str) -> None:
  """Runs this process on the CPU cores in `spec` ('' leaves it alone).

  Why: XLA sizes its CPU thread pool from the cores a process may use, and
  one process's small attack kernels run one after the other, taking turns
  on the pool's threads. On a 2-core machine one unpinned process therefore
  keeps the cores half idle and moves its data between their caches; two
  processes pinned to one core each (`run.distributed` with `run.cpu_cores`
  0 and 1) ran 1.6× as many DLG evaluations per second at 64 victims, and
  DLG's 16 photos in 2 min 45 s instead of 3 min 32 s (BUILD_NOTES.md,
  "Throughput"). Must run before JAX starts its backend, whose threads keep
  the affinity they were created with. Linux only (`os.sched_setaffinity`).
  """
  cores = parse_cores(spec)
  if not cores:
    return
  if not hasattr(os, 'sched_setaffinity'):
    raise ConfigError('run.cpu_cores needs Linux (os.sched_setaffinity); leave it empty here.')
  usable = os.sched_getaffinity(0)
  if not cores <= usable:
    raise ConfigError(f'run.cpu_cores={spec!r} names cores this machine does not let the '
                     f'process use; usable: {sorted(usable)}.')
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    raise ConfigError('run.cpu_cores must be applied before JAX starts its backend; pass it '
                     'on launch.py\'s command line (the first thing a run does).')
  os.sched_setaffinity(0, cores)


def initialize_distributed(run_config: Mapping[str, Any]) -> None:
  """`jax.distributed.initialize` once, when `run.distributed` asks for several hosts.

  `run.coordinator_address` ('host:port'), `run.num_processes` and
  `run.process_id` are passed when set (> 0 / >= 0); left unset, JAX detects
  them on SLURM, Open MPI, Cloud TPU and GKE (and reads the address from
  JAX_COORDINATOR_ADDRESS).
  """
  if not run_config.get('distributed', False) or jax.distributed.is_initialized():
    return
  kwargs = {}
  if run_config.get('coordinator_address'):
    kwargs['coordinator_address'] = str(run_config['coordinator_address'])
  if int(run_config.get('num_processes', 0)) > 0:
    kwargs['num_processes'] = int(run_config['num_processes'])
  if int(run_config.get('process_id', -1)) >= 0:
    kwargs['process_id'] = int(run_config['process_id'])
  jax.distributed.initialize(**kwargs)


def wait_for_files(paths: list[str], poll_seconds: float = 5.0) -> None:
  """Blocks until every path exists (the other processes' chunks, shared workdir).

  Why not a collective barrier (`multihost_utils.sync_global_devices`): its
  gloo context on CPU times out after 30 s, and processes legitimately finish
  their chunks minutes or hours apart. Files are what process 0 reads anyway.
  """
  missing = [p for p in paths if not os.path.exists(p)]
  waited = 0.0
  while missing:
    if waited % 60 < poll_seconds:
      logging.info('waiting for %d chunk file(s) from other processes, e.g. %s',
                   len(missing), missing[0])
    time.sleep(poll_seconds)
    waited += poll_seconds
    missing = [p for p in missing if not os.path.exists(p)]
