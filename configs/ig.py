"""Inverting Gradients (Geiping et al. 2020) on an untrained ResNet-18.

CIFAR stem (3×3, no max-pool), BatchNorm in train mode (the victim's batch
statistics), 4 offline photos at 32×32, labels from iDLG. Cosine distance +
TV (1e-4), Adam (lr 0.1) on the signed image gradient, pixels boxed to
[0, 1], lr ×0.1 at 3/8, 5/8, 7/8 of the 24,000 iterations of the paper.

  python launch.py --config=configs/ig.py --workdir=runs/ig
  python launch.py --config=configs/ig.py:lenet --workdir=runs/ig_lenet   # 16 photos, DLG LeNet
  python launch.py --config=configs/ig.py:smoke --workdir=runs/smoke

Threat model (also in config.json): labels recovered (iDLG), BatchNorm in
train mode, untrained weights.

Measured 2026-11-26 (load average ≈7 from other jobs; BUILD_NOTES.md,
"Inverting Gradients"): `:lenet` (the DLG LeNet, all 16 photos, lr 0.01 with
the plateau schedule, patience 200, 'linear' layer weights, 20,000 steps):
mean PSNR 27.0 dB (20.9–33.9), SSIM 0.845, labels 16/16, 530 s attack, 9 min
21 s wall. The paper's schedule on the same LeNet (lr 0.025, ×0.1 at 3/8,
5/8, 7/8, 24,000 steps) reached only 17.5 dB: signed Adam at a fixed step
ends in a limit cycle that only a cut breaks.

ResNet-18 (this config unchanged), session 4: on this CPU an iteration of
the 4 victims takes 4.5–7.5 s, so 20 minutes buy ≈270 of the 24,000. On one
NVIDIA H100 (`benchmarks/issue3_gpu.sh`, ≈25 iterations/s): mean PSNR 7.2 dB
flat for the first 9,000 iterations (cosine loss 0.70), 8.0 after the first
×0.1, 8.2 at 11,000 (stopped there); with steps=4000, 8.7 dB. **The ≥ 18 dB
target is not reached.** The cause is BatchNorm in train mode on a batch of
one: on a thin ResNet-18 the eval-mode threat model (`--config.client.train=
False --config.attack.train=False`, what Geiping et al.'s notebooks use)
matches the gradient 20× better and keeps gaining PSNR where train mode
stalls (BUILD_NOTES.md, "ResNet-18: the PSNR-per-iteration curve").
`python benchmarks/bn_landscape.py` (session 5) shows why: in train mode the
objective puts an image at 18 dB from the truth (0.5·x + 0.25) as far away
(cosine distance 0.78) as another photo or noise (0.81–0.83), a narrow well
on a plateau; in eval mode all of them are within 0.11. Eight random
restarts all start on that plateau (thin ResNet-18, best probe loss 0.6567
against 0.6562 for one). In eval mode (`--config.client.train=False
--config.attack.train=False`, lr 0.01, plateau schedule) the full-width
network reached 17.89 dB (SSIM 0.79) on one photo in 400 iterations, 6 min
38 s on this CPU.
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.data.num_victims = 4
  # ResNet's default stem is 'cifar'; kept implicit so that
  # --config.model.name=lenet needs no other change.
  config.model = ml_collections.ConfigDict({'name': 'resnet18'})
  config.attack = ml_collections.ConfigDict()
  config.attack.name = 'ig'
  config.attack.labels = 'idlg'  # idlg | known
  config.attack.init = 'randn'
  config.attack.steps = 24_000
  config.attack.chunk = 200
  config.attack.restarts = 1
  config.attack.lr = 0.1
  config.attack.tv = 1e-4
  # Per-layer weights of the cosine: '' (uniform) | 'linear' | 'exp' (decay from
  # the input layer to the output, Geiping et al.'s code) | a tuple, one weight
  # per parameter tensor in forward order (set it in a config file).
  config.attack.layer_weights = ''
  # 'multistep' (the paper's ×0.1 at 3/8, 5/8, 7/8) | 'plateau' (×0.1 after
  # plateau_patience steps without a new best loss, the DIA code's choice).
  config.attack.schedule = 'multistep'
  config.attack.plateau_patience = 800
  config.attack.stop_patience = 0  # early stop after this many steps without a new best; 0 = never
  config.attack.tol = 0.0
  config.attack.train = True
  # Victims per vmapped block run one after the other (0: all at once);
  # see optimize.make_chunk. Results are the same either way.
  config.attack.block_victims = 0
  if arg == 'lenet':
    config.model = ml_collections.ConfigDict({'name': 'lenet'})
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
    config.model = ml_collections.ConfigDict({'name': 'lenet'})
  return config
