"""iDLG (Zhao et al. 2020) on the DLG LeNet, 256 Fashion-MNIST test images.

Real labelled data offline: the gzip IDX files that Debian's
`dataset-fashion-mnist` package installs (README.md: with root
`apt-get install dataset-fashion-mnist`; without it `apt-get download` +
`dpkg -x`). Victims run in chunks of 32 that are saved as they finish, so a
killed run resumes where it stopped (BUILD_NOTES.md, "Many victims and TFDS").

  python launch.py --config=configs/idlg_fashion_mnist.py --workdir=runs/fmnist \
      --config.data.path=/usr/share/datasets/fashion-mnist
  python launch.py --config=configs/idlg_fashion_mnist.py:smoke --workdir=runs/fmnist_smoke

Measured 2026-11-26 on the shared 2-core CPU (load average ≈14), 500
iterations: 256/256 victims above 30 dB (min 59.8, mean 78.4 dB, SSIM 1.000),
label accuracy 1.0, none diverged; 1,545 s of attack time, 27 min 46 s wall.
With --config.data.num_victims=1000 (load ≈7): 1,000/1,000 above 30 dB (min
55.1, mean 79.0 dB), 0.149 victims/s of attack time, 1 h 54 min wall,
37.6 CPU-minutes. Identical per-victim numbers on 1, 2 or 4 devices come
from run.device_victims (below).
Details, resume and devices: BUILD_NOTES.md, "Many victims and TFDS (issue 6)".
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
  config.attack.name = 'idlg'
  config.attack.labels = 'idlg'
  config.attack.init = 'rand'
  config.attack.steps = 500
  if arg == 'smoke':
    config.run.chunk_victims = config.run.device_victims = 1
  return common.apply_arg(config, arg)
