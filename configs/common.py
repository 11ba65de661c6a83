"""The base config every experiment starts from, and its CI-sized variant."""

from __future__ import annotations

import copy
from typing import Any

import ml_collections

from dlg_jax import server
from dlg_jax import weights
from dlg_jax.attacks import registry
from dlg_jax.client import simulate
from dlg_jax.errors import ConfigError


def base() -> ml_collections.ConfigDict:
  """Defaults: iDLG on the DLG LeNet, 16 offline photos, batch size 1."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = 'photos'  # photos | npz | folder
  config.data.path = ''  # npz file or image folder
  config.data.size = 32  # pixels per side (LeNet: 28 or 32)
  config.data.channels = 3
  config.data.num_victims = 16
  config.data.num_classes = 0  # 0: the data set's own count
  # idx / TFDS sources (data.name='idx' or any TFDS name, e.g. 'fashion_mnist'):
  config.data.data_dir = ''  # TFDS data_dir holding the set prepared as ArrayRecord
  config.data.split = 'test'
  config.data.indices = ()  # explicit victim indices within the split, in order
  config.data.sample_seed = -1  # >= 0: a seeded sample of the split; -1: the first ones
  # Normalisation folded into the model's first layer (attacks and metrics
  # stay in [0, 1] pixels): '' | a data-set name in preprocess.STATS | 'custom'.
  config.data.normalize = ''
  config.data.mean = ()  # for normalize='custom': one value or one per channel
  config.data.std = ()

  config.model = model('lenet')
  # The weights the server sends (threat model; dlg_jax/weights.py):
  # The weights the server sends (threat model; dlg_jax/weights.py): source
  # random | checkpoint (path: msgpack from dlg_jax.weights.save) | train
  # (steps Adam steps at lr, batches of batch_size, on the run's data first).
  config.model_init = ml_collections.ConfigDict(copy.deepcopy(weights.DEFAULTS))
  # The client's round and defenses: dlg_jax/client/simulate.py DEFAULTS.
  config.client = ml_collections.ConfigDict(copy.deepcopy(simulate.DEFAULTS))
  # The model the server sends: honest (unchanged) or malicious, e.g. an
  # imprint block in front of it (dlg_jax/server/__init__.py DEFAULTS).
  config.server = ml_collections.ConfigDict(copy.deepcopy(server.DEFAULTS))

  # How the victims are executed. With device_victims > 0 neither chunk_victims
  # nor the number of devices changes a victim's result (bitwise); with 0 they
  # change it at float-rounding level (other batch shapes, other kernels).
  config.run = ml_collections.ConfigDict()
  config.run.chunk_victims = 0  # victims per saved chunk (0: all in one chunk)
  # Victims each device attacks at once: every device then runs the program
  # compiled for this block size, so results are bitwise the same on any
  # number of devices (parallel.rounds). 0: each chunk split evenly over the
  # devices in one go (results then differ across device counts at rounding level).
  config.run.device_victims = 0
  config.run.resume = True  # skip chunks already saved in the workdir
  config.run.distributed = False  # jax.distributed.initialize(); each host takes its share
  # Passed to jax.distributed.initialize when set; unset, JAX detects them
  # on SLURM / Open MPI / Cloud TPU / GKE.
  config.run.coordinator_address = ''  # 'host:port' of process 0
  config.run.num_processes = 0
  config.run.process_id = -1
  # CPU cores this process runs on, e.g. '0' or '0-3' ('' = all): one pinned
  # process per core with run.distributed is the fastest way to use a small
  # CPU machine (parallel.pin_cpu_cores; benchmarks/two_cores.sh).
  config.run.cpu_cores = ''
  # JAX's persistent compilation cache, so that a second run of a config
  # compiles nothing ('': off; JAX_COMPILATION_CACHE_DIR, if set, wins).
  config.run.compilation_cache = '~/.cache/dlg_jax/xla'

  # iDLG with its defaults, every field it reads (the fields and what they
  # mean: dlg_jax/attacks/registry.py, dlg.py, solvers.py).
  config.attack = ml_collections.ConfigDict(registry.defaults('idlg'))
  return config


def model(name: str, **fields: Any) -> ml_collections.ConfigDict:
  """A `model` config: registry name, the module fields this config fixes, options.

  `options` ('width=16,act=sigmoid') takes any other module field from the
  command line, since a locked config cannot gain fields
  (`dlg_jax.models.module_arguments`).
  """
  return ml_collections.ConfigDict({'name': name, **fields, 'options': ''})


def stop_when_recovered(attack: ml_collections.ConfigDict) -> None:
  """DLG/iDLG's stopping rules, read from the matching loss only (attacker-side).

  A lane stops once its L2 loss is below 3e-8 × the shared gradient's
  squared norm, or once it fell by less than 1% in 100 iterations (its
  float32 floor); victims run in vmapped blocks of 2. Measured on the 16
  photos (2026-12-03, docs/results/dlg_idlg.md): the lowest victim at the
  stop was 34.3 dB (DLG) and 34.6 dB (iDLG), against ≈ 48 dB after running
  every lane to the end; DLG's lanes stop after 2,239 iterations on average
  instead of 4,000, iDLG's after 1,311 instead of 2,500. Blocks of 2: 0.83 ms
  per lane-iteration against 1.41 (8), 0.90 (4), 1.03 (1), one pinned core.
  """
  attack.rel_tol = 3e-8
  attack.stop_patience = 100
  attack.stop_rtol = 0.01
  attack.block_victims = 2


def apply_arg(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies the text after ':' in --config=file.py:arg ('smoke' or nothing)."""
  if arg == 'smoke':
    return smoke(config)
  if arg:
    raise ConfigError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a config to a seconds-long run (tests, CI)."""
  config.data.num_victims = 2
  if 'steps' not in config.attack:  # a closed-form attack: nothing to shorten
    return config
  config.attack.steps = 20
  config.attack.chunk = 10
  config.attack.restarts = 2
  if 'memory' in config.attack:  # L-BFGS attacks only
    config.attack.memory = 10
  return config
