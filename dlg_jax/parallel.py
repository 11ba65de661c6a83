"""The victim axis across devices and hosts: a one-axis mesh, nothing inside it.

Victims are independent, so the only parallelism the lab needs is to split
the leading victim axis of a chunk's data over the local devices
(`NamedSharding(mesh, P('victims'))`) and let `jax.jit` propagate that
sharding through the client and the attack; no code inside an attack knows
about devices. Across hosts, each process runs its own share of the chunks on
its own devices (`share`): victims never need to talk to each other, so no
cross-host collective is compiled, and the only coordination is a barrier
before process 0 writes the report.
"""

from __future__ import annotations

import jax
from jax.experimental import multihost_utils
import numpy as np

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


def initialize_distributed(enabled: bool) -> None:
  """`jax.distributed.initialize()` once, when the config asks for several hosts.

  With no arguments JAX reads the coordinator, process count and index from
  the cluster environment (SLURM, Cloud TPU, or JAX_COORDINATOR_ADDRESS /
  JAX_NUM_PROCESSES / JAX_PROCESS_ID); see jax.distributed.initialize.
  """
  if enabled and not jax.distributed.is_initialized():
    jax.distributed.initialize()


def barrier(name: str) -> None:
  """Waits for every process (no-op on one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
