"""Defenses × strengths against iDLG, Inverting Gradients and the imprint read-out.

Zhu et al. 2019 (DLG, Sec. 5), Abadi et al. 2016 (DP-SGD) and Fowl et al.
2022 (Robbing the Fed). The DLG LeNet (sigmoid) is attacked on 8 offline
photos at batch size 1 under each defense: Gaussian/Laplacian noise of
variance 1e-4 … 1e-1, fp16, bf16, int8, pruning 10–70%, DP-SGD (C = 1,
z = 0.01, 0.1, 1); trained on scikit-learn's digits with each defense it
gives test accuracy and ε. The imprint entry (a malicious server's 32-bin
imprint block, thresholds from digits; 4 victims of 4 photos) is scored by
exact recovery under the same defenses, plus undefended rows at batch 8, 16
and 2, 4 users (secure aggregation). Writes table.*, tradeoff_*.png.

  python launch.py --config=configs/defenses.py --workdir=runs/defenses
  python launch.py --config=configs/defenses.py:smoke --workdir=runs/defenses_smoke
  python launch.py --config=configs/defenses.py --workdir=runs/defenses --config.attacks.idlg.steps=2500

Threat model: labels recovered, random weights, FedSGD; the attack does not model the defense.
imprint: a malicious server (it sends the model), labels private, same defenses on the update.
Measured 2026-11-26: iDLG 27.5 dB undefended; noise ≥ 1e-2 or pruning ≥ 30% take it to < 15 dB.
Measured 2026-12-03 (imprint, Fashion-MNIST, B = 16, 128 bins): exact recall 0.935 undefended,
0 under any noise (variance ≥ 1e-4: 96.7% test acc; DP-SGD z ≥ 0.01) or fp16; 0.05 at 30% pruning.
More: docs/results/defenses.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from dlg_jax.attacks import registry
from dlg_jax.sweeps import utility


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.sweep = 'defenses'  # launch.py hands it to dlg_jax.sweeps (sweeps/defenses.py)
  config.data.num_victims = 8
  config.model = common.model('lenet')
  del config.attack  # one attack config per entry of `attacks`

  config.attacks = ml_collections.ConfigDict()
  config.attacks.idlg = ml_collections.ConfigDict(registry.defaults('idlg'))
  config.attacks.idlg.steps = 500
  config.attacks.ig = ml_collections.ConfigDict(registry.defaults('ig'))
  config.attacks.ig.steps = 1000
  # Robbing the Fed's read-out, scored by exact recovery: a malicious server
  # plants an imprint block (bin thresholds from scikit-learn's digits, public)
  # and reads every image alone in its bin out of the defended update. The
  # offline photos give 80 images, hence 4 victims of 4 and at most 64 a row.
  config.attacks.imprint = ml_collections.ConfigDict({
      **registry.defaults('imprint'),
      'server': {'name': 'imprint', 'bins': 32, 'public': 'digits'},
      'client': {'batch_size': 4},
      'data': {'num_victims': 4}})
  # Extra undefended imprint rows: larger batches, more users (secure aggregation).
  config.imprint_batches = (8, 16)
  config.imprint_users = (2, 4)

  # defense -> strengths (see dlg_jax/sweeps/defenses.py for their units).
  config.grid = ml_collections.ConfigDict({
      'gaussian': [1e-4, 1e-3, 1e-2, 1e-1],  # variance
      'laplacian': [1e-4, 1e-3, 1e-2, 1e-1],  # variance
      'quantize': ['fp16', 'bf16', 'int8'],
      'prune': [0.1, 0.2, 0.3, 0.5, 0.7],  # sparsity
      'dp_sgd': [0.01, 0.1, 1.0],  # noise multiplier z
  })
  config.dp = ml_collections.ConfigDict({'clip_norm': 1.0})

  # The utility run: the same model, 10 digit classes, trained per grid point;
  # fields in dlg_jax/sweeps/utility.py DEFAULTS (1,000 Adam steps of B = 64 at
  # lr 1e-3, DP-SGD with Poisson batches, δ = 1e-5, RDP accountant).
  config.utility = ml_collections.ConfigDict(utility.DEFAULTS)

  if arg == 'smoke':
    # Compilation dominates: one attack, two grid points (batch and DP paths).
    config.data.num_victims = 2
    del config.attacks.ig
    config.attacks.idlg.steps, config.attacks.idlg.chunk = 10, 10
    config.attacks.idlg.memory = 10
    config.grid = ml_collections.ConfigDict({'dp_sgd': [1.0]})
    config.attacks.imprint.data.num_victims = 2
    config.imprint_batches, config.imprint_users = (8,), (2,)
    config.utility.steps, config.utility.batch_size, config.utility.chunk = 20, 16, 10
  elif arg:
    raise common.ConfigError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config
