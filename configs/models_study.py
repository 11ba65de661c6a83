"""Khowaja's study: DLG against LeNet, ResNet-18, DenseNet-121, Inception-v3.

Sigmoid activations; L-BFGS (memory 100) on the squared L2 gradient distance,
MSE per iteration; one photo resized to each input (LeNet 32, ResNet-18 and
DenseNet-121 224, Inception-v3 299). Labels by iDLG's rule (exact here): the
study's optimised soft labels stall optax's L-BFGS (`--config.attack.labels=
optimize --config.attack.init=randn` restores them). Writes mse_per_step.png,
table.{md,csv,json}, curves.json; `--config.models.<name>.steps` shortens a model.

  python launch.py --config=configs/models_study.py --workdir=runs/models_study
  python launch.py --config=configs/models_study.py:smoke --workdir=runs/models_study_smoke

Threat model: labels recovered, random weights, BatchNorm in train mode, FedSGD.
Measured 2026-12-04 (703454f): all four × 300 iterations in 24 min on the 2-core CPU; final MSE
LeNet 0.0053, ResNet-18 0.207, DenseNet-121 0.139, Inception-v3 0.205 (the study's ranking).
More (all four models, CPU and GPU runs): docs/results/models_study.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from dlg_jax.attacks import registry

MODELS = {
    'lenet': {'model': {'name': 'lenet', 'act': 'sigmoid'}, 'size': 32, 'normalize': '',
              'num_classes': 100, 'steps': 300},
    'resnet18': {'model': {'name': 'resnet18', 'stem': 'imagenet', 'act': 'sigmoid'},
                 'size': 224, 'normalize': 'imagenet2012', 'num_classes': 1000, 'steps': 300},
    'densenet121': {'model': {'name': 'densenet121', 'act': 'sigmoid'}, 'size': 224,
                    'normalize': 'imagenet2012', 'num_classes': 1000, 'steps': 300},
    'inception_v3': {'model': {'name': 'inception_v3', 'act': 'sigmoid'}, 'size': 299,
                     'normalize': 'imagenet2012', 'num_classes': 1000, 'steps': 300},
}

# Tiny stand-ins for the smoke run (seconds, not hours): same code paths.
SMOKE_MODELS = {
    'lenet': {'model': {'name': 'lenet', 'act': 'sigmoid', 'channels': 4}, 'size': 16,
              'normalize': '', 'num_classes': 16},
    'resnet18': {'model': {'name': 'resnet18', 'stem': 'imagenet', 'act': 'sigmoid',
                           'width': 4, 'stage_sizes': (1, 1)},
                 'size': 32, 'normalize': 'imagenet2012', 'num_classes': 16},
    'densenet121': {'model': {'name': 'densenet121', 'act': 'sigmoid', 'growth_rate': 4,
                              'block_sizes': (1, 1), 'init_features': 8, 'bn_size': 2},
                    'size': 32, 'normalize': 'imagenet2012', 'num_classes': 16},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  base = common.base()
  config = ml_collections.ConfigDict()
  config.sweep = 'models_study'  # launch.py hands it to dlg_jax.sweeps (sweeps/models_study.py)
  config.seed = 0
  config.data = base.data
  config.data.num_victims = 1  # the study shows one image per model
  config.model_init = base.model_init  # random weights, as the study
  config.client = base.client  # batch 1, BatchNorm in train mode, FedSGD
  config.run = base.run
  # DLG with one restart and the default L-BFGS memory 100 (the study's
  # history_size=100).
  config.attack = ml_collections.ConfigDict(registry.defaults('dlg'))
  config.attack.labels = 'idlg'  # optimize: DLG's soft labels (see the docstring)
  config.attack.init = 'rand'  # U(0, 1) dummy (iDLG code); 'randn' is DLG's N(0, 1)
  config.attack.steps = 300  # each model's `steps` overrides it (shorter runs on a CPU)
  config.attack.chunk = 1  # a snapshot, hence an MSE point, after every iteration
  config.attack.tol = 0.0

  config.order = tuple(MODELS)
  config.models = ml_collections.ConfigDict(MODELS)
  if arg == 'smoke':
    config.models = ml_collections.ConfigDict(SMOKE_MODELS)
    config.order = tuple(SMOKE_MODELS)
    config.attack.steps, config.attack.chunk, config.attack.memory = 6, 2, 5
  elif arg:
    raise common.ConfigError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config
