"""Trap weights (Boenisch et al., EuroS&P 2023): a malicious server that only changes weights.

No architecture change: the server sends the clients an MLP whose first
dense layer (2000 rows on the flattened 28×28 input) holds trap weights
(server/trap_weights.py): N(0, σ) draws, the negative ones ×1.05, and biases
such that each row fires for 1% (= 1/B) of 10,000 PUBLIC Fashion-MNIST
training images. A row fired by one input alone gives it back exactly as
∇W_i / ∇b_i (attacks/trap_weights.py); 100 victims, each a batch of 100
Fashion-MNIST test images. Why 2000 rows: at rate 1/B a row isolates one
input with probability ≈ 1/e, so n rows give each of B inputs about
n/(B·e) chances to be alone (7.4 here), but Fashion-MNIST images are
correlated, so rows favour some inputs: on 5 batches, 1000 rows recovered
61 of 100 per batch, 2000 rows 74, at 2.4 MB of kernel gradient per victim
(fine on 2 CPU cores). Why s = 1.05 and not larger: the biases already make
rows rare; a large s turns every row into a darkness detector (w·x ≈
−c·brightness), so all rows trap the same dark images (s = 3: 6.6 per batch).

  python launch.py --config=configs/trap_weights.py --config.data.path=/tmp/fmnist/usr/share/datasets/fashion-mnist --workdir=runs/trap_weights
  python launch.py --config=configs/trap_weights.py:smoke --workdir=runs/trap_weights_smoke

Threat model: malicious server (chooses the first layer's weights, not the
architecture), labels private (not recovered), FedSGD; --config.client.users=U
sums U users' updates (secure aggregation) and the same read-out applies.
Measured 2026-12-03: 76.07 of 100 images per batch recovered exactly (per batch
66–86; 86.64 were alone in some row), 36 s wall on 2 shared CPU cores;
docs/results/malicious_server.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from dlg_jax.attacks import registry


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = common.base()
  config.data.name = 'idx'
  config.data.path = '/usr/share/datasets/fashion-mnist'
  config.data.split = 'test'  # the victims; the server's public images come from 'train'
  config.data.size = 28
  config.data.channels = 1
  config.data.num_victims = 100
  config.data.sample_seed = 0  # a seeded sample of the test split
  config.client.batch_size = 100
  config.model = common.model('mlp', hidden_sizes=(2000,))
  config.server.name = 'trap_weights'
  config.server.trap_rate = 1.0 / config.client.batch_size
  config.server.public = 'split'  # Fashion-MNIST's training split: public, not the victims'
  config.server.public_split = 'train'
  config.server.public_size = 10_000
  config.attack = ml_collections.ConfigDict(registry.defaults('trap_weights'))
  if arg == 'smoke':  # offline photos, biases from scikit-learn's digits
    config.data.name, config.data.size, config.data.channels = 'photos', 32, 3
    config.data.sample_seed = -1
    config.client.batch_size = 4
    config.model.hidden_sizes = (64,)
    config.server.trap_rate, config.server.public = 0.25, 'digits'
  return common.apply_arg(config, arg)
