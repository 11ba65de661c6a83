"""Dropout rates × attacks × models: Zheng's defense against DIA (issue 4).

Rates {0, 0.1, 0.25, 0.5} × {IG, DIA, WIIG} × {LeNet-5, MLP, small ViT} on the
offline photos, plus Zheng's own row group: the DLG paper's sigmoid LeNet
(Zheng's "LeNet-5 as in DLG") with dropout before the classifier, attacked by
DLG and iDLG (deterministic model, L-BFGS) and by DIA / WIIG on the same
L-BFGS machinery, at rates 0 to 0.5. Writes table.{md,csv,json}, plot.png (MSE against rate, a line per
model / attack), plot_<model>.png and every cell's grids; an interrupted sweep
resumes where it stopped. The test-accuracy column trains each (model, rate)
on scikit-learn's digits with dropout active (Zheng's figure 6).

  python launch.py --config=configs/dropout_sweep.py --workdir=runs/dropout_sweep
  python launch.py --config=configs/dropout_sweep.py:smoke --workdir=runs/smoke_sweep

Measured 2026-11-26, Zheng's group only (4 photos, 1,000 L-BFGS its per cell,
35–58 s per cell on the quiet machine), mean PSNR for p = 0 / 0.1 / 0.25 / 0.5:
iDLG 38.1 / 5.9 / 6.1 / 6.1 dB, DLG 22.4 / 6.1 / 5.6 / 5.4, DIA (L-BFGS)
38.1 / 33.3 / 29.3 / 18.6, WIIG (L-BFGS) 38.1 / 44.1 / 44.2 / 34.5. The
IG/DIA/WIIG grid over LeNet-5, MLP and ViT has not run in full yet (MLP at
p = 0.25: configs/dia.py's docstring). See BUILD_NOTES.md, "Dropout and DIA
(issue 4)".
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import dia

RATES = (0.0, 0.1, 0.25, 0.5)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  base = common.base()
  config = ml_collections.ConfigDict()
  config.sweep = 'dropout'
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
  for name, labels in (('dlg', 'optimize'), ('idlg', 'idlg')):
    attack = ml_collections.ConfigDict(base.attack.to_dict())
    attack.name, attack.labels = name, labels
    attack.init = 'randn' if name == 'dlg' else 'rand'
    config.attacks[name] = attack
  # DIA's idea on iDLG's machinery (L2, L-BFGS, relaxed masks), and its
  # masks-known bound: on the sigmoid LeNet, where L-BFGS is the attack that
  # works at p = 0, these are the fair comparison to Zheng's iDLG.
  for name in ('dia', 'wiig'):
    attack = ml_collections.ConfigDict(base.attack.to_dict())
    attack.name, attack.optimizer, attack.mask_weight = name, 'lbfgs', 1e-4
    config.attacks[f'{name}_lbfgs'] = attack

  config.groups = ml_collections.ConfigDict()
  config.groups.dia = ml_collections.ConfigDict(
      {'models': ('lenet5', 'mlp', 'vit_small'), 'rates': RATES, 'attacks': ('ig', 'dia', 'wiig')})
  # Zheng's setting: "the LeNet-5 of the DLG experiments" is the DLG paper's
  # sigmoid LeNet ('lenet'), dropout before the classifier, iDLG/DLG.
  config.groups.zheng = ml_collections.ConfigDict(
      {'models': ('lenet',), 'rates': RATES,
       'attacks': ('dlg', 'idlg', 'dia_lbfgs', 'wiig_lbfgs')})

  config.utility = ml_collections.ConfigDict({'steps': 1500, 'batch_size': 64, 'lr': 1e-3})

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
    raise ValueError(f'unknown config argument {arg!r}; use ":smoke" or nothing.')
  return config
