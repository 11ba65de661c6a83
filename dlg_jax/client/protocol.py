"""What a client shares after its local round: one function for both sides.

`observe` is the client's round reduced to what the server receives. The
client calls it on its private batch; every optimisation attack calls it on
its dummy batch and differentiates through it, so both sides run exactly the
same program (as `gradients.py` guarantees for a single gradient).

Protocols (`types.Protocol`, public: the server defines the round):

* ``fedsgd`` (McMahan et al. 2017's FedSGD): the gradient of the mean loss of
  the batch.
* ``fedavg`` (McMahan et al. 2017's FedAvg, one client round): K =
  `local_steps` SGD steps θₜ₊₁ = θₜ − η ∇L(θₜ; batch) at η = `local_lr`, each on
  the whole batch (no local mini-batches, no momentum), with the same dropout
  masks every step; BatchNorm running statistics are not updated (they do not
  enter a train-mode forward pass). The client shares the weight change in
  gradient units, **(θ₀ − θ_K) / (K η)** = the mean of the K local gradients.
  The server knows K and η, so this is the weight change up to a known
  factor; for K = 1 it *is* the FedSGD gradient, so label rules, defenses and
  distances keep their scale. It is computed as the running sum of the local
  gradients, not as a difference of weights, to avoid float32 cancellation.

The attacker unrolls the K steps with `lax.scan`; differentiating the
observation w.r.t. the dummy images goes through every step (second order in
each), so an attack step costs ≈K times a FedSGD one.

References:
  McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient
  Learning of Deep Networks from Decentralized Data", AISTATS 2017.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax

from dlg_jax.client import gradients
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.types import Protocol, PyTree

PROTOCOLS = ('fedsgd', 'fedavg')
FEDSGD = Protocol()


def from_config(config: Mapping[str, Any]) -> Protocol:
  """The `Protocol` of a `client` config (fields protocol, local_steps, local_lr).

  Missing fields mean FedSGD.

  Raises:
    ValueError: an unknown protocol, local_steps < 1 or local_lr <= 0, naming
      the `client.` field.
  """
  name = config.get('protocol', 'fedsgd')
  if name not in PROTOCOLS:
    raise ConfigError(f'client.protocol must be one of {PROTOCOLS}, got {name!r}.')
  if name == 'fedsgd':
    return FEDSGD
  steps, lr = config.get('local_steps', 1), config.get('local_lr', 0.1)
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
    raise ConfigError(f'client.local_steps must be an integer >= 1 (local SGD steps of '
                     f'FedAvg), got {steps!r}.')
  if not float(lr) > 0:
    raise ConfigError(f'client.local_lr must be > 0 (the local SGD learning rate), got {lr!r}.')
  return Protocol('fedavg', int(steps), float(lr))


def observe(model: Model, variables: PyTree, images: jax.Array, targets: jax.Array, *,
            protocol: Protocol = FEDSGD, masks: PyTree | None = None,
            train: bool = True) -> PyTree:
  """What one client shares for its batch under `protocol` (a params pytree).

  Args:
    model, variables: the global model the server sent.
    images: (B, H, W, C) inputs; targets: (B, num_classes) class probabilities
      (one-hot for hard labels, a softmax for DLG's dummy labels).
    protocol: the round (`from_config`); static under jit.
    masks: dropout keep-masks, the same for every local step; None runs the
      model deterministically.
    train: BatchNorm on the batch's statistics.

  Returns:
    FedSGD: the batch gradient. FedAvg: (θ₀ − θ_K) / (K η), the mean local
    gradient (see the module docstring).
  """
  if protocol.name == 'fedsgd':
    return gradients.batch_gradients(model, variables, images, targets, masks=masks,
                                     train=train)
  if protocol.name != 'fedavg':
    raise ConfigError(f'client.protocol must be one of {PROTOCOLS}, got {protocol.name!r}.')
  params, state = gradients.split_variables(variables)
  grad_fn = jax.grad(gradients.training_loss)
  lr = protocol.local_lr

  def local_step(carry, _):
    theta, total = carry
    g = grad_fn(theta, model, state, images, targets, masks, train)
    theta = jax.tree.map(lambda p, gi: p - lr * gi, theta, g)
    return (theta, jax.tree.map(jax.numpy.add, total, g)), None

  zeros = jax.tree.map(jax.numpy.zeros_like, params)
  (_, total), _ = jax.lax.scan(local_step, (params, zeros), length=protocol.local_steps)
  return jax.tree.map(lambda t: t / protocol.local_steps, total)
