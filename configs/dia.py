"""The Dropout Inversion Attack (Scheliga et al. 2023) on the offline photos.

The client's MLP (the DIA code's: 3 × 512 GELU, no biases, dropout p = 0.25
after every hidden layer) shares one gradient per photo. DIA optimises image
and masks together: cosine + TV 1e-5 + 1e-4 · |(1 − mean mask) − p| per site,
signed Adam lr 0.1, [0, 1] clamps, ReduceLROnPlateau (800), early stop (4000).

  python launch.py --config=configs/dia.py --workdir=runs/dia
  python launch.py --config=configs/dia.py --config.attack.name=ig    # deterministic attacker
  python launch.py --config=configs/dia.py --config.attack.name=wiig --config.client.reveal_masks=True
  python launch.py --config=configs/dia.py:vit_small --workdir=runs/dia_vit --config.attack.steps=3000
  python launch.py --config=configs/dia.py:smoke --workdir=runs/smoke

Threat model: untrained weights, labels recovered by iDLG (batch size 1), masks unknown.
Measured 2026-12-03 (34a2141): 4 photos, DIA mean MSE 8.0e-5 (41.38 dB) in 4 min 18 s on 2 CPU cores.
More (IG, WIIG, the ViT): docs/results/dropout_dia.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from dlg_jax.attacks import registry

# The DIA code's models (example_configs/models/{MLP,ViT}.yaml) and Zheng's.
MODELS = {
    'mlp': {'name': 'mlp', 'hidden_sizes': (512, 512, 512), 'act': 'gelu', 'use_bias': False},
    'vit_small': {'name': 'vit_small', 'num_heads': 16, 'mlp_dim': 256},
    'lenet5': {'name': 'lenet5', 'act': 'sigmoid'},
}


def attack_config(name: str) -> ml_collections.ConfigDict:
  """IG, DIA and WIIG with the DIA code's settings (example_configs/attacks)."""
  # The defaults hold the rest: signed Adam at lr 0.1, labels by iDLG, N(0, 1)
  # init, DIA's mask prior 1e-4 (unused by IG and WIIG).
  attack = ml_collections.ConfigDict(registry.defaults(name))
  attack.steps = 20_000  # an upper bound; the early stop ends most lanes sooner
  attack.tv = 1e-5
  # ReduceLROnPlateau ×0.1 after plateau_patience (the default 800) steps
  # without improvement.
  attack.schedule = 'plateau'
  attack.stop_patience = 4000  # early stop; 0 = never
  attack.tol = 1e-5  # the DIA code stops below this reconstruction loss
  return attack


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  model = 'mlp'
  if arg in MODELS:  # --config=configs/dia.py:vit_small picks the DIA code's ViT
    model, arg = arg, None
  elif arg not in (None, '', 'smoke'):
    raise common.ConfigError(f'unknown config argument {arg!r}; use ":smoke", one of the models '
                     f'{sorted(MODELS)} (":vit_small") or nothing.')
  config = common.base()
  config.data.num_victims = 4
  config.model = common.model(**MODELS[model], dropout_rate=0.25)
  config.attack = attack_config('dia')
  # The code's 20,000 is an upper bound; on the MLP DIA is at 42 dB by 4,000.
  config.attack.steps = 4000
  config = common.apply_arg(config, arg)
  if arg == 'smoke':
    config.model.hidden_sizes = (64, 64)
    config.attack.stop_patience = 0
  return config
