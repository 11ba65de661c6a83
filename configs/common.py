"""The base config every experiment starts from, and its CI-sized variant."""

from __future__ import annotations

from typing import Any

import ml_collections


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
  config.model_init = ml_collections.ConfigDict()
  config.model_init.source = 'random'  # random | checkpoint | train
  config.model_init.path = ''  # checkpoint: msgpack from dlg_jax.weights.save
  config.model_init.steps = 0  # train: Adam steps on the run's data set first
  config.model_init.lr = 1e-3
  config.model_init.batch_size = 16

  config.client = ml_collections.ConfigDict()
  config.client.batch_size = 1
  config.client.train = True  # BatchNorm on the batch's statistics (threat model)
  config.client.reveal_labels = False  # labels are private unless this is set
  # The round (dlg_jax/client/protocol.py): fedsgd shares one gradient; fedavg
  # takes local_steps SGD steps at local_lr and shares (θ0 − θK)/(K·lr).
  config.client.protocol = 'fedsgd'  # fedsgd | fedavg
  config.client.local_steps = 1
  config.client.local_lr = 0.1
  config.client.reveal_masks = False  # dropout masks too (WIIG's masks-known upper bound)
  config.client.defenses = []  # ordered list of {'name': ..., params}; see client/defenses.py

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

  config.attack = ml_collections.ConfigDict()
  config.attack.name = 'idlg'
  config.attack.labels = 'idlg'  # optimize (DLG) | idlg (iDLG; batch rule for B > 1) | known
  config.attack.init = 'rand'  # rand: U(0,1) (iDLG code) | randn: N(0,1) (DLG code)
  config.attack.distance = 'l2'
  config.attack.steps = 2500  # L-BFGS iterations (each with its line search)
  config.attack.chunk = 100  # iterations per compiled chunk (progress granularity)
  config.attack.restarts = 1  # random initialisations per victim; lowest loss kept
  config.attack.memory = 100  # L-BFGS history
  config.attack.linesearch = 'backtracking'  # backtracking (Armijo) | zoom (strong Wolfe)
  config.attack.linesearch_steps = 20
  config.attack.tol = 1e-12  # stop a lane once its matching loss is this small
  config.attack.train = True  # the BatchNorm mode the attacker assumes
  return config


def model(name: str, **fields: Any) -> ml_collections.ConfigDict:
  """A `model` config: registry name, the module fields this config fixes, options.

  `options` ('width=16,act=sigmoid') takes any other module field from the
  command line, since a locked config cannot gain fields
  (`dlg_jax.models.module_arguments`).
  """
  return ml_collections.ConfigDict({'name': name, **fields, 'options': ''})


def apply_arg(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies the text after ':' in --config=file.py:arg ('smoke' or nothing)."""
  if arg == 'smoke':
    return smoke(config)
  if arg:
    raise ValueError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a config to a seconds-long run (tests, CI)."""
  config.data.num_victims = 2
  config.attack.steps = 20
  config.attack.chunk = 10
  config.attack.restarts = 2
  config.attack.memory = 10
  return config
