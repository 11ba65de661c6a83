"""The Dropout Inversion Attack (Scheliga et al. 2023) on the offline photos.

The client trains the DIA code's MLP (3 × 512 GELU units, no biases) with
dropout p = 0.25 after every hidden layer and shares one gradient per photo;
its masks are private. DIA optimises the image and per-example masks of every
site together: cosine distance + TV 1e-5 + 1e-4 · |(1 − mean mask) − p| per
site, Adam lr 0.1 with the sign on the image gradient, pixels and masks
clamped to [0, 1], ReduceLROnPlateau (patience 800) and early stop (4000).

  python launch.py --config=configs/dia.py --workdir=runs/dia
  python launch.py --config=configs/dia.py --config.attack.name=ig    # deterministic attacker
  python launch.py --config=configs/dia.py --config.attack.name=wiig --config.client.reveal_masks=True
  python launch.py --config=configs/dia.py:vit_small --workdir=runs/dia_vit --config.attack.steps=3000
  python launch.py --config=configs/dia.py:smoke --workdir=runs/smoke

Threat model (also in config.json): untrained weights, labels recovered by
iDLG (batch size 1), dropout masks unknown (client.reveal_masks=False).

Measured 2026-11-26 (4 photos, p = 0.25, 4,000 steps; the machine was shared
by other jobs at load 13–17, so wall times are 4–6× a quiet run's): DIA mean
MSE 1.01e-4 (42.0 dB, 928 s); the same config with attack.name=ig 7.93e-2
(11.3 dB, 859 s) and with wiig + reveal_masks 4.33e-6 (53.9 dB, 1,391 s).
On the quiet machine this config took 2 min 45 s wall (154 s attack) with the
same result. Session 4, after the model's weights became jit arguments (float
rounding of the folded constants no longer applies): DIA mean MSE 6.9e-5
(43.3 dB, labels 4/4), 3 min 0 s wall (166 s attack), quiet machine.

The DIA code's small ViT (`:vit_small`; patch 4, width 256, depth 4, 16 heads,
MLP 256), same 4 photos, p = 0.25, 3,000 steps, measured 2026-11-26 at load
6.5–7.5 (three runs and two other agents' jobs sharing 2 cores): IG mean MSE
0.238 (6.3 dB), DIA 6.6e-3 (22.9 dB, 1/36 of IG's), WIIG 8.8e-4 (32.0 dB);
attack 1,594 / 1,735 / 1,479 s wall under that load; DIA used 13.6 CPU-minutes
in all, which bounds its wall time on the idle machine. Labels: the rank-one
rule for signed features (`Model.signed_features`), 4/4 for every attack.
Details: BUILD_NOTES.md, "Dropout and DIA (issue 4)".
"""

from __future__ import annotations

import ml_collections

from configs import common

# The DIA code's models (example_configs/models/{MLP,ViT}.yaml) and Zheng's.
MODELS = {
    'mlp': {'name': 'mlp', 'hidden_sizes': (512, 512, 512), 'act': 'gelu', 'use_bias': False},
    'vit_small': {'name': 'vit_small', 'num_heads': 16, 'mlp_dim': 256},
    'lenet5': {'name': 'lenet5', 'act': 'sigmoid'},
}


def attack_config(name: str) -> ml_collections.ConfigDict:
  """IG, DIA and WIIG with the DIA code's settings (example_configs/attacks)."""
  attack = ml_collections.ConfigDict()
  attack.name = name
  attack.labels = 'idlg'  # idlg | known
  attack.init = 'randn'
  attack.steps = 20_000  # an upper bound; the early stop ends most lanes sooner
  attack.chunk = 200
  attack.restarts = 1
  attack.lr = 0.1
  attack.tv = 1e-5
  attack.mask_weight = 1e-4  # DIA's per-site mask prior (unused by IG and WIIG)
  attack.schedule = 'plateau'  # ReduceLROnPlateau ×0.1 ...
  attack.plateau_patience = 800  # ... after this many steps without improvement
  attack.stop_patience = 4000  # early stop; 0 = never
  attack.tol = 1e-5  # the DIA code stops below this reconstruction loss
  attack.train = True
  return attack


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  model = 'mlp'
  if arg in MODELS:  # --config=configs/dia.py:vit_small picks the DIA code's ViT
    model, arg = arg, None
  elif arg not in (None, '', 'smoke'):
    raise ValueError(f'unknown config argument {arg!r}; use ":smoke", one of the models '
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
