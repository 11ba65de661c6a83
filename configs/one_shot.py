"""One-shot imprint (Fowl et al., ICLR 2022): one target out of 64 users × 64 images.

The server wants one image it has chosen (the "target"; here image 0 of the
4,096 victims) and knows the target's mean brightness (its grey levels sum to
74,095 of 255·784). It sends configs/imprint.py's imprint block with 2 bins
only, their thresholds server.target_width = 4e-6 apart around that
brightness (less than one grey level of one pixel, 1/(255·784) = 5.0e-6), so
the target alone falls between them, however many users are summed: one
victim made of 64 users of 64 Fashion-MNIST test images, the server seeing
only the sum of their 64 updates (secure aggregation). The unchanged imprint
read-out gives the image between the thresholds, and the optimal matching
over the 4,096 (metrics.assignment, row by row in memory) scores it.

  python launch.py --config=configs/one_shot.py --config.data.path=/tmp/fmnist/usr/share/datasets/fashion-mnist --workdir=runs/one_shot
  python launch.py --config=configs/one_shot.py:smoke --workdir=runs/one_shot_smoke

Another target: --config.server.target=<its mean brightness in [0, 1]>
(benchmarks/one_shot_imprint.py loops over several). It fails when another
image of the 4,096 lies within target_width / 2 of the target's brightness
(then the read-out returns their mixture).

Threat model: malicious server that chooses the model it sends and knows the
mean brightness of the one image it targets (side information, e.g. it holds
a copy and wants to know who trains on it); labels private (not recovered);
random LeNet weights behind the block; FedSGD; 64 users summed.
Measured 2026-12-03: the target recovered exactly (largest pixel error
5.6e-5), the only exact image of the 4,096; 45–49 s wall on 2 shared CPU cores,
the matching over 4,096 × 4,096 included; docs/results/malicious_server.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import imprint
from dlg_jax import data as data_lib

# Image 0 of the seeded sample (data.sample_seed=0) of 4,096 Fashion-MNIST
# test images: its grey levels sum to 74,095, so its mean brightness is
TARGET = 74_095 / (255 * 28 * 28)  # 0.370623258...


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = imprint.get_config()
  config.data.num_victims = 1
  config.client.users = 64
  config.client.batch_size = 64
  config.server.bins = 2
  config.server.target = TARGET
  config.server.target_width = 4e-6
  if arg == 'smoke':  # offline photos: 2 victims of 2 users × 2 images; target: photo 0
    config.data.name, config.data.size, config.data.channels = 'photos', 32, 3
    config.data.sample_seed = -1
    config.client.users, config.client.batch_size = 2, 2
    config.server.public = 'digits'
    photo = data_lib.load({'name': 'photos', 'size': 32, 'channels': 3}, 1).images[0]
    config.server.target = float(photo.astype('float64').mean())
  return common.apply_arg(config, arg)
