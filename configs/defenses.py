"""Defenses × strengths against iDLG and Inverting Gradients, with their utility.

Zhu et al. 2019 (DLG, Sec. 5) and Abadi et al. 2016 (DP-SGD). The DLG LeNet
(sigmoid) is attacked on 8 offline photos at batch size 1 under each defense
of the grid, and trained on scikit-learn's digits with the same defense on
every step's gradient for the test-accuracy column (`dlg_jax/defense_sweep.py`).

  python launch.py --config=configs/defenses.py --workdir=runs/defenses
  python launch.py --config=configs/defenses.py:smoke --workdir=runs/defenses_smoke
  python launch.py --config=configs/defenses.py --workdir=runs/defenses --config.attacks.idlg.steps=2500

Writes table.{md,csv,json} and tradeoff_<attack>.png in the workdir; every
cell (and every training) is resumable. Add DLG with a config override file
or by editing `attacks` below (it is about twice as slow as iDLG).

Grid: none; Gaussian and Laplacian noise of variance 1e-4 … 1e-1 (Laplace
scale sqrt(v/2)); fp16, bf16, int8; pruning 10–70%; DP-SGD with C = 1 and
z = 0.01, 0.1, 1 (ε for the utility run's q = 64/1347, T = 1,000, δ = 1e-5).

Measured 2026-11-26 on the shared 2-core CPU (about 90 min under heavy load;
BUILD_NOTES.md, "Defenses sweep (issue 5)"): iDLG 27.5 dB undefended at 500
iterations; 13.0 dB at noise variance 1e-4, 5.0–5.5 dB at >= 1e-2; fp16/bf16
27.3/27.2 dB (no defense); pruning 20% 19.0 dB, 30% 14.1, 50% 8.9, 70% 6.6 dB;
DP-SGD 5.3–6.1 dB. Digits test accuracy 97.3% undefended, 76.2% at Gaussian
variance 1e-1, 74.2% for DP-SGD z = 1 (ε = 11.3); pruning and quantisation
cost nothing. IG at 1,000 iterations reconstructs nothing (11.8 dB
undefended).
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import idlg
from configs import ig


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.sweep = 'defenses'  # launch.py hands configs with this field to dlg_jax.sweep
  config.data.num_victims = 8
  config.model = common.model('lenet')
  del config.attack  # one attack config per entry of `attacks`

  config.attacks = ml_collections.ConfigDict()
  config.attacks.idlg = idlg.get_config().attack
  config.attacks.idlg.steps = 500
  config.attacks.ig = ig.get_config().attack
  config.attacks.ig.steps = 1000

  # defense -> strengths (see dlg_jax/defense_sweep.py for their units).
  config.grid = ml_collections.ConfigDict({
      'gaussian': [1e-4, 1e-3, 1e-2, 1e-1],  # variance
      'laplacian': [1e-4, 1e-3, 1e-2, 1e-1],  # variance
      'quantize': ['fp16', 'bf16', 'int8'],
      'prune': [0.1, 0.2, 0.3, 0.5, 0.7],  # sparsity
      'dp_sgd': [0.01, 0.1, 1.0],  # noise multiplier z
  })
  config.dp = ml_collections.ConfigDict({'clip_norm': 1.0})

  # The utility run: the same model, 10 digit classes, trained per grid point.
  config.utility = ml_collections.ConfigDict()
  config.utility.data = 'digits'
  config.utility.steps = 1000
  config.utility.batch_size = 64
  config.utility.lr = 1e-3  # Adam
  config.utility.chunk = 100
  config.utility.seed = 0
  config.utility.delta = 1e-5  # DP-SGD's delta (< 1/N for N = 1,347)
  config.utility.sampling = 'poisson'  # poisson | fixed (DP-SGD batches)
  config.utility.accountant = 'rdp'  # rdp | pld

  if arg == 'smoke':
    # Compilation dominates: one attack, two grid points (batch and DP paths).
    config.data.num_victims = 2
    del config.attacks.ig
    config.attacks.idlg.steps, config.attacks.idlg.chunk = 10, 10
    config.attacks.idlg.memory = 10
    config.grid = ml_collections.ConfigDict({'dp_sgd': [1.0]})
    config.utility.steps, config.utility.batch_size, config.utility.chunk = 20, 16, 10
  elif arg:
    raise ValueError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config
