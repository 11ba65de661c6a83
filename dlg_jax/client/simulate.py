"""One federated round as the victims run it: what they share, what they keep.

Each victim takes its batch, samples its dropout masks from its own key,
computes the gradient of its training loss (per example when a defense needs
it) and applies its defense. The server receives a `ClientUpdate`; the ground
truth stays in `Private`, which only the metrics see.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from dlg_jax.client import defenses as defenses_lib
from dlg_jax.client import gradients
from dlg_jax.client import protocol as protocol_lib
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.models import layers
from dlg_jax.types import ClientUpdate, Protocol, PyTree, Private

# The `client` config: every field `client_update` reads, at its default.
DEFAULTS: dict[str, Any] = {
    'batch_size': 1,  # images per victim
    'train': True,  # BatchNorm on the batch's statistics (threat model)
    'reveal_labels': False,  # labels are private unless this is set
    # The round (client/protocol.py): fedsgd shares one gradient; fedavg takes
    # local_steps SGD steps at local_lr and shares (θ0 − θK)/(K·lr).
    'protocol': 'fedsgd',
    'local_steps': 1,
    'local_lr': 0.1,
    'reveal_masks': False,  # dropout masks too (WIIG's masks-known upper bound)
    'defenses': [],  # ordered list of {'name': ..., params}; see client/defenses.py
    # Users per victim: each holds its own batch of batch_size images and the
    # server sees only the SUM of their updates (as under secure aggregation).
    'users': 1,
}


def victim_gradient(model: Model, variables: PyTree, images: jax.Array, labels: jax.Array,
                    key: jax.Array, *, train: bool, dropout_rate: float,
                    defense: defenses_lib.Defense,
                    protocol: Protocol = protocol_lib.FEDSGD) -> tuple[PyTree, PyTree]:
  """What one victim shares for its batch (`protocol.observe`) and its masks.

  Args:
    images: (B, H, W, C) in the model's input space; labels: (B,) int.
    key: the victim's own key; split here into dropout and defense streams.
    train: BatchNorm on the batch's statistics (the client is training).
    dropout_rate: the model's dropout rate (masks only if the model has sites).
    protocol: the round: FedSGD (one gradient) or FedAvg (K local steps).
  """
  if defense.needs_per_example and protocol.name != 'fedsgd':
    raise ConfigError('per-example defenses (dp_sgd) clip single gradients; under '
                     'client.protocol="fedavg" they are not implemented: use "fedsgd".')
  k_drop, k_def = jax.random.split(key)
  template = model.mask_template(variables, images.shape[0])
  masks = layers.sample_masks(k_drop, template, dropout_rate) if template else None
  targets = jax.nn.one_hot(labels, model.num_classes)
  if defense.needs_per_example:
    per_example = gradients.per_example_gradients(model, variables, images, targets,
                                                  masks=masks, train=train)
    return defense.apply(per_example, k_def), masks
  grads = protocol_lib.observe(model, variables, images, targets, protocol=protocol, masks=masks,
                               train=train)
  return defense.aggregate(grads, k_def, batch_size=images.shape[0]), masks


def aggregate(user, variables: PyTree, images: jax.Array, labels: jax.Array, key: jax.Array,
              users: int) -> tuple[PyTree, PyTree]:
  """The sum of `users` users' updates (secure aggregation), and their masks (U, ...).

  `images` (U·B, ...) and `labels` (U·B,) are the users' batches one after
  the other; user u runs `user(variables, images, labels, fold_in(key, u))`.
  """
  split = lambda x: x.reshape(users, -1, *x.shape[1:])
  grads, masks = jax.vmap(user, in_axes=(None, 0, 0, 0))(
      variables, split(images), split(labels),
      jax.vmap(lambda u: jax.random.fold_in(key, u))(jnp.arange(users)))
  return jax.tree.map(lambda g: jnp.sum(g, axis=0), grads), masks


def client_update(model: Model, variables: PyTree, victims: Private, key: jax.Array,
                  config: Mapping[str, Any], victim_ids: jax.Array | None = None
                  ) -> tuple[ClientUpdate, Private, PyTree]:
  """Runs every victim's round at once (vmap over victims).

  Args:
    victims: ground truth, images (V, B, H, W, C) and labels (V, B); with
      `users` U > 1, B is U × batch_size (each user's batch in turn) and the
      server sees the sum of the U users' updates (`aggregate`).
    key: the clients' key; victim v uses `fold_in(key, victim_ids[v])`.
    config: `client` config: train (BatchNorm mode), protocol, local_steps,
      local_lr (see `protocol.from_config`), reveal_labels,
      reveal_masks (the dropout masks too: WIIG's threat model), defenses
      (a list of defense specs, see `defenses.build`).
    victim_ids: (V,) global victim indices (default arange(V)); a chunk of a
      larger run passes its slice so each victim's key is the same in any chunk.

  Returns:
    (what the server sees, the ground truth, the dropout masks each victim
    drew — ground truth too, for the masks-known upper bound).
  """
  defense = defenses_lib.build(list(config.get('defenses', [])))
  protocol = protocol_lib.from_config(config)
  dropout_rate = float(getattr(model.module, 'dropout_rate', 0.0))
  num_victims, batch_size = victims.labels.shape
  users = int(config.get('users', 1))

  def user(variables, images, labels, key):
    return victim_gradient(model, variables, images, labels, key,
                           train=bool(config['train']), dropout_rate=dropout_rate,
                           defense=defense, protocol=protocol)

  def one(v, images, labels, variables, key):
    key = jax.random.fold_in(key, v)
    if users == 1:
      return user(variables, images, labels, key)
    return aggregate(user, variables, images, labels, key, users)

  ids = jnp.arange(num_victims) if victim_ids is None else jnp.asarray(victim_ids)
  # Weights and key as arguments, not constants (see attacks/optimize.py).
  grads, masks = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, None)))(
      ids, victims.images, victims.labels, variables, key)
  update = ClientUpdate(
      gradients=grads, batch_size=batch_size, input_shape=model.input_shape,
      num_classes=model.num_classes, protocol=protocol,
      known_labels=victims.labels if config.get('reveal_labels', False) else None,
      known_masks=masks if config.get('reveal_masks', False) else None,
      victim_ids=victim_ids)
  return update, victims, masks
