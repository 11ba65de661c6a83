"""iDLG (Zhao et al. 2020) on the DLG LeNet, 256 Fashion-MNIST test images.

Real labelled data offline: the gzip IDX files that Debian's
`dataset-fashion-mnist` package installs (README.md: `apt-get install`, or
without root `apt-get download` + `dpkg -x` and --config.data.path). Victims
run in chunks of 32 saved as they finish, so a killed run resumes where it
stopped; 32 victims per device make results bitwise equal on any device count.

  python launch.py --config=configs/idlg_fashion_mnist.py --workdir=runs/fmnist
  python launch.py --config=configs/idlg_fashion_mnist.py:smoke --workdir=runs/fmnist_smoke
  python benchmarks/many_victims.py --num_victims=1000 --workdir=runs/fmnist_1000

Threat model: labels recovered, random weights, FedSGD.
Measured 2026-11-26: 256/256 victims ≥ 30 dB (mean 78.42 dB); 1,000 at 0.149 victims/s.
More (kill-and-resume, devices, hosts): docs/results/many_victims.md.
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.data.name = 'idx'
  config.data.path = '/usr/share/datasets/fashion-mnist'
  config.data.split = 'test'
  config.data.size = 28
  config.data.channels = 1
  config.data.num_victims = 256
  config.run.chunk_victims = 32
  # Each device attacks 32 victims at once (one round per chunk on one
  # device): results are bitwise the same on any number of devices. On k
  # devices set chunk_victims to 32k, or rounds are padded with repeats.
  config.run.device_victims = 32
  config.attack.steps = 500  # base()'s attack: iDLG with its defaults otherwise
  if arg == 'smoke':
    config.run.chunk_victims = config.run.device_victims = 1
  return common.apply_arg(config, arg)
