"""Dropout rates × attacks × models: Zheng's defense against DIA.

Rates {0, 0.1, 0.25, 0.5} × {IG, DIA, WIIG} × {LeNet-5, MLP, small ViT} on the
offline photos, plus Zheng's group: the DLG paper's sigmoid LeNet with dropout
before the classifier, attacked by DLG, iDLG and DIA / WIIG on L-BFGS. The
test-accuracy column trains each (model, rate) on scikit-learn's digits with
dropout active (Zheng's figure 6). Writes table.{md,csv,json}, plot.png,
plot_<model>.png and every cell's grids; an interrupted sweep resumes.

  python launch.py --config=configs/dropout_sweep.py --workdir=runs/dropout_sweep
  python launch.py --config=configs/dropout_sweep.py:smoke --workdir=runs/smoke_sweep

Threat model: masks private (WIIG: revealed), labels recovered, random weights, FedSGD.
Measured, every cell (2026-12-03/04, 64980f8): at p = 0.1 iDLG on Zheng's LeNet falls from 55.7 to
5.6 dB while DIA gets 51.9 dB, and IG on the ViT from 29.2 to 6.9 dB while WIIG gets 30.8 dB.
The full table and its commands: docs/results/dropout_dia.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import dia
from dlg_jax.attacks import registry
from dlg_jax.sweeps import utility

RATES = (0.0, 0.1, 0.25, 0.5)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  base = common.base()
  config = ml_collections.ConfigDict()
  config.sweep = 'dropout'  # launch.py hands it to dlg_jax.sweeps (sweeps/dropout.py)
  config.seed = 0
  config.data = base.data
  config.data.num_victims = 4
  config.client = base.client

  config.models = ml_collections.ConfigDict(
      {**dia.MODELS, 'lenet': {'name': 'lenet'}})
  config.attacks = ml_collections.ConfigDict()
  for name in ('ig', 'dia', 'wiig'):
    config.attacks[name] = dia.attack_config(name)
    # One budget for every cell: the sweep is 36 + 10 runs.
    config.attacks[name].steps = 6000
    config.attacks[name].stop_patience = 2000
  for name in ('dlg', 'idlg'):
    config.attacks[name] = ml_collections.ConfigDict(registry.defaults(name))
  # DIA's idea on iDLG's machinery (L2, L-BFGS with its defaults, relaxed
  # masks), and its masks-known bound: on the sigmoid LeNet, where L-BFGS is
  # the attack that works at p = 0, these are the fair comparison to Zheng's
  # iDLG, whose U(0, 1) init they share.
  for name in ('dia', 'wiig'):
    config.attacks[f'{name}_lbfgs'] = ml_collections.ConfigDict(
        registry.complete({'name': name, 'optimizer': 'lbfgs', 'init': 'rand'}))

  config.groups = ml_collections.ConfigDict()
  config.groups.dia = ml_collections.ConfigDict(
      {'models': ('lenet5', 'mlp', 'vit_small'), 'rates': RATES, 'attacks': ('ig', 'dia', 'wiig')})
  # Zheng's setting: "the LeNet-5 of the DLG experiments" is the DLG paper's
  # sigmoid LeNet ('lenet'), dropout before the classifier, iDLG/DLG.
  config.groups.zheng = ml_collections.ConfigDict(
      {'models': ('lenet',), 'rates': RATES,
       'attacks': ('dlg', 'idlg', 'dia_lbfgs', 'wiig_lbfgs')})

  # Test accuracy per (model, rate): trained on digits with dropout active;
  # fields in dlg_jax/sweeps/utility.py DEFAULTS (steps=0: no column).
  config.utility = ml_collections.ConfigDict(utility.DEFAULTS)
  config.utility.steps = 1500

  if arg == 'smoke':
    config.data.num_victims = 1
    config.data.size = 16
    config.models = ml_collections.ConfigDict({
        'mlp': {'name': 'mlp', 'hidden_sizes': (32,), 'act': 'gelu', 'use_bias': False},
        'lenet5': {'name': 'lenet5', 'act': 'sigmoid'}})
    for attack in config.attacks.values():
      attack.steps, attack.chunk = 6, 3
      if 'memory' in attack:
        attack.memory = 5
    # Four cells, two compiled attacks' worth (IG and DIA coincide at p = 0).
    config.groups.dia.models, config.groups.dia.rates = ('mlp',), (0.0, 0.25)
    config.groups.dia.attacks = ('ig', 'dia')
    del config.groups['zheng']
    config.utility.steps, config.utility.batch_size = 20, 16
  elif arg:
    raise common.ConfigError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config
