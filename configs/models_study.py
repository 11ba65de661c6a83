"""Khowaja's study: DLG against LeNet, ResNet-18, DenseNet-121, Inception-v3.

Every model has sigmoid activations (the study swaps each ReLU), random
weights, BatchNorm in train mode (PyTorch's default mode, which the DLG code
never leaves), and is attacked by DLG: L-BFGS (memory 100, as the study's
`history_size=100`) on the squared L2 gradient distance. Labels: iDLG's rule
(read off the output layer; exact for B = 1 since every model here feeds
its classifier non-negative sigmoid features), not the study's optimised
soft labels: with optax's L-BFGS the joint image + label-logit problem
stalled within 3 iterations on ResNet-18 at 224 and on the smoke nets (the
line search stops finding a decrease; BUILD_NOTES.md), which would measure
the optimiser, not the architecture. `--config.attack.labels=
optimize --config.attack.init=randn` restores the study's DLG. The same photo(s) go to every
model, resized to its input: LeNet 32×32 in [0, 1]; ResNet-18 (ImageNet stem)
and DenseNet-121 224×224, Inception-v3 299×299, each normalised with the
ImageNet mean/std inside the model. LeNet has the DLG code's 100 classes, the
others torchvision's 1000. One iteration here is one L-BFGS update with its
line search; the study's 300 `optimizer.step()` calls run up to 20 such
iterations each (BUILD_NOTES.md, "What one iteration is").

  python launch.py --config=configs/models_study.py --workdir=runs/models_study
  python launch.py --config=configs/models_study.py:smoke --workdir=runs/models_study_smoke

Writes mse_per_step.png, table.{md,csv,json} and curves.json
(dlg_jax/models_study.py).

Measured 2026-11-26 on the shared 2-core CPU (wall seconds incl. compile;
big models' steps cut with --config.models.<name>.steps): LeNet 300
iterations, MSE 0.162 → 0.00577 (22.4 dB), 92 s; ResNet-18 10 iterations,
MSE 0.1852 → 0.1857 (7.3 dB; matching loss 0.70 → 0.29), 224 s, ≈5 s per
iteration after compiling. On one NVIDIA H100 (session 4, this config
unchanged, `benchmarks/issue3_gpu.sh`): LeNet 300 iterations, 7.9 → 18.0 dB
(MSE 0.0158), 16 s; ResNet-18 300 iterations, MSE 0.185 → 0.208 (6.8 dB)
while the matching loss fell 0.70 → 0.026, 108 s (85 of them compiling);
DenseNet-121 was still compiling after 5 minutes and Inception-v3 was not
reached. Those two on this CPU, the GPU cells resumed from their files
(`--config.models.densenet121.steps=30 --config.models.inception_v3.steps=20`):
DenseNet-121 MSE 0.235 (6.3 dB) after 30 iterations, 1,706 s (≈1,040
compiling); Inception-v3 MSE 0.187 (7.3 dB, flat) after 20, 507 s.
Details and the ranking against the study: BUILD_NOTES.md, "Models study
(issue 3)".
"""

from __future__ import annotations

import ml_collections

from configs import common

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
  config.sweep = 'models_study'  # launch.py hands it to dlg_jax/models_study.py
  config.seed = 0
  config.data = base.data
  config.data.num_victims = 1  # the study shows one image per model
  config.model_init = base.model_init  # random weights, as the study
  config.client = base.client  # batch 1, BatchNorm in train mode, FedSGD
  config.run = base.run
  config.attack = base.attack
  config.attack.name = 'dlg'
  config.attack.labels = 'idlg'  # optimize: DLG's soft labels (see the docstring)
  config.attack.init = 'rand'  # U(0, 1) dummy (iDLG code); 'randn' is DLG's N(0, 1)
  config.attack.restarts = 1
  config.attack.memory = 100
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
    raise ValueError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config
