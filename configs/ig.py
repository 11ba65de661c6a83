"""Inverting Gradients (Geiping et al. 2020) on an untrained ResNet-18.

CIFAR stem (3×3, no max-pool), 4 offline photos at 32×32, labels from iDLG.
Cosine distance + TV (1e-4), Adam (lr 0.1) on the signed image gradient,
pixels boxed to [0, 1], lr ×0.1 at 3/8, 5/8, 7/8 of the paper's 24,000 steps.

  python launch.py --config=configs/ig.py --workdir=runs/ig
  python launch.py --config=configs/ig.py:eval --workdir=runs/ig_eval     # BatchNorm in eval mode
  python launch.py --config=configs/ig.py:lenet --workdir=runs/ig_lenet   # 16 photos, DLG LeNet
  python launch.py --config=configs/ig.py:smoke --workdir=runs/smoke

Threat model: labels recovered, untrained weights, BatchNorm in train mode (the
victim's batch statistics); `:eval` uses running statistics, as Geiping et al.'s code.
Measured 2026-11-26: `:eval` 19.76 dB in 17 min on 2 CPU cores; train mode stalls near 8 dB.
More (`:lenet`, GPU curves, why train mode stalls): docs/results/inverting_gradients.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from dlg_jax.attacks import registry


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.data.num_victims = 4
  # ResNet's default stem is 'cifar'; kept implicit so that
  # --config.model.name=lenet needs no other change.
  config.model = common.model('resnet18')
  # The paper's: lr 0.1, TV 1e-4, 24,000 steps, ×0.1 at 3/8, 5/8, 7/8, uniform
  # layer weights (the fields: dlg_jax/attacks/inverting.py, solvers.py).
  config.attack = ml_collections.ConfigDict(registry.defaults('ig'))
  if arg not in (None, '', 'smoke', 'lenet', 'eval'):
    raise common.ConfigError(f'unknown config argument {arg!r}; use ":smoke", ":lenet", ":eval" or '
                     'nothing.')
  if arg == 'eval':
    # Geiping et al.'s threat model: their code calls model.eval() before the
    # client's gradient, so BatchNorm uses running statistics on both sides.
    config.client.train = False
    config.attack.train = False
    config.attack.steps = 400
    config.attack.chunk = 50
    config.attack.lr = 0.01
    config.attack.schedule = 'plateau'
    config.attack.plateau_patience = 200
    return config
  if arg == 'lenet':
    config.model = common.model('lenet')
    config.data.num_victims = 16
    config.attack.steps = 20_000
    config.attack.chunk = 1000
    config.attack.lr = 0.01
    config.attack.schedule = 'plateau'
    config.attack.plateau_patience = 200
    config.attack.layer_weights = 'linear'
    return config
  config = common.apply_arg(config, arg)
  if arg == 'smoke':
    config.model = common.model('lenet')
  return config
