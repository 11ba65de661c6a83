"""QBI (Nowak et al. 2024): quantile-based biases in the first dense layer.

Reproduces QBI's bias rule (not its PAIRS search) on Fashion-MNIST: the
server sends the clients the same MLP as configs/trap_weights.py (2000 rows
on the flattened 28×28 input) whose first dense layer holds N(0, 1) weights
and, per row, the bias −q_{1−p}(w·x): minus the (1 − p) quantile of the
row's pre-activation over 10,000 PUBLIC Fashion-MNIST training images, with
p = 1/B (server.trap_rate), the rate that maximises the chance B·p·(1 − p)^(B−1)
that exactly one of B inputs fires a row (server/qbi.py). The trap-weights
read-out (attacks/trap_weights.py) gives back every input that alone fired
some row, as ∇W_i / ∇b_i; 100 victims, each a batch of 100 Fashion-MNIST
test images.

  python launch.py --config=configs/qbi.py --config.data.path=/tmp/fmnist/usr/share/datasets/fashion-mnist --workdir=runs/qbi
  python launch.py --config=configs/qbi.py:smoke --workdir=runs/qbi_smoke

Threat model: malicious server (chooses the first layer's weights, not the
architecture; public images of the same domain), labels private (not
recovered), FedSGD; --config.client.users=U sums U users' updates (secure
aggregation) and the same read-out applies (set trap_rate to 1/(U·B)).
Measured 2026-12-03: 73.67 of 100 images per batch recovered exactly (per
batch 63–82; 84.84 were alone in some row; 732 rows per batch fired by one
image, closed form n·(1 − 1/B)^(B−1) = 739.5; trap weights: 76.07), no
mixture counted, 64 s wall on 2 shared CPU cores; docs/results/malicious_server.md.
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import trap_weights


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = trap_weights.get_config()  # the same data, model, client and read-out
  config.server.name = 'qbi'
  if arg == 'smoke':  # offline photos, biases from scikit-learn's digits
    config.data.name, config.data.size, config.data.channels = 'photos', 32, 3
    config.data.sample_seed = -1
    config.client.batch_size = 4
    config.model.hidden_sizes = (64,)
    config.server.trap_rate, config.server.public = 0.25, 'digits'
  return common.apply_arg(config, arg)
