"""The Dropout Inversion Attack (DIA) and its masks-known upper bound (WIIG).

Under client dropout the shared gradient comes from a *stochastic* model: the
client's random keep-masks are part of the computation, and an attacker who
runs the model deterministically (plain IG, DLG) matches the wrong function —
the failure Zheng reads as a defense. DIA models the stochasticity instead: it
optimises per-example masks of every site's full activation shape jointly with
the image.

As in the paper and its code (dAI-SY-Group/DropoutInversionAttack):
  * masks start as a Bernoulli(1 − p) draw from the attacker's key and enter
    the model with the client's inverted scaling 1/(1 − p) (`MaskedDropout`);
  * loss = cosine gradient distance + tv × TV(x̂)
    + mask_weight × Σ_sites |(1 − mean(mask)) − p|, which keeps each site's
    drop fraction near the known rate;
  * one Adam over image and masks, the sign applied to the image gradient only,
    pixels boxed to [0, 1] and masks clamped to [0, 1] after every step;
  * ReduceLROnPlateau (×0.1 after `plateau_patience` flat steps) and early stop
    after `stop_patience` steps without a new best; the best iterate is kept.
With p = 0 the model has no dropout sites and DIA is IG exactly (the code's
"fallback").

WIIG ("what if IG knew") is IG given the client's true masks
(`ClientUpdate.known_masks`, revealed with client.reveal_masks=True): the
upper bound DIA approaches.

References:
  Scheliga, Mäder, Seeland, "Dropout is NOT All You Need to Prevent Gradient
  Leakage", AAAI 2023.
  Zheng, "Dropout against Deep Leakage from Gradients", 2021.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from dlg_jax.attacks import dlg
from dlg_jax.attacks import inverting
from dlg_jax.client import protocol as protocol_lib
from dlg_jax.models import Model
from dlg_jax.models import layers
from dlg_jax.types import AttackResult, ClientUpdate, Protocol, PyTree


def dropout_rate(model: Model) -> float:
  """The rate of the model's dropout sites (one rate for all, as in the zoo)."""
  return float(getattr(model.module, 'dropout_rate', 0.0))


def init_masks(key: jax.Array, template: PyTree, rate: float) -> PyTree:
  """A Bernoulli(1 − rate) draw shaped like the client's masks."""
  return layers.sample_masks(key, template, rate)


def mask_penalty(masks: PyTree, rate: float) -> jax.Array:
  """Σ over sites of |(1 − mean(mask)) − rate|: each site's drop fraction vs p."""
  return sum(jnp.abs((1.0 - jnp.mean(m)) - rate) for m in jax.tree.leaves(masks))


def clamp(z: PyTree) -> PyTree:
  """Pixels boxed to [0, 1] and masks clamped to [0, 1] (relaxed Bernoulli)."""
  z = inverting.box(z)
  if 'masks' in z:
    z = {**z, 'masks': jax.tree.map(lambda m: jnp.clip(m, 0.0, 1.0), z['masks'])}
  return z


def lane_loss(z: PyTree, aux: PyTree, *, model: Model, variables: PyTree, train: bool,
              tv: float, mask_weight: float, rate: float,
              protocol: Protocol = protocol_lib.FEDSGD) -> jax.Array:
  """DIA's objective for one lane: IG's loss under z's masks + the mask prior."""
  loss = inverting.lane_loss(z, aux, model=model, variables=variables, train=train, tv=tv,
                             protocol=protocol)
  if 'masks' in z:
    loss = loss + mask_weight * mask_penalty(z['masks'], rate)
  return loss


def init_lane_variables(key: jax.Array, *, shape: tuple[int, ...], num_classes: int,
                        init: str, template: PyTree, rate: float) -> PyTree:
  """Dummy image (and masks when the model has dropout sites) of one lane.

  Without sites the image comes from `key` itself, exactly as IG's does, so
  that DIA at p = 0 *is* IG.
  """
  if not template:
    return dlg.init_dummy(key, shape, num_classes, init, label_mode='known')
  k_image, k_masks = jax.random.split(key)
  z = dlg.init_dummy(k_image, shape, num_classes, init, label_mode='known')
  z['masks'] = init_masks(k_masks, template, rate)
  return z


def check_config(config: Mapping[str, Any]) -> None:
  """IG's checks plus the mask prior's weight."""
  inverting.check_config(config)
  if float(config.get('mask_weight', 0.0)) < 0:
    raise ValueError(f'attack.mask_weight must be >= 0, got {config["mask_weight"]}.')


def _aux(update: ClientUpdate, labels: jax.Array) -> dict[str, Any]:
  aux = {'target': update.gradients, 'labels': labels}
  victim_ids = getattr(update, 'victim_ids', None)
  if victim_ids is not None:
    aux['victim_ids'] = victim_ids
  return aux


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """DIA: image and dropout masks optimised together (see the module docstring).

  Args:
    config: IG's fields (labels, init, steps, chunk, restarts, lr, tv, tol,
      train, schedule, plateau_patience, stop_patience) and mask_weight.
  """
  check_config(config)
  labels = dlg.recover_labels(update, config['labels'])
  rate = dropout_rate(model)
  variables = {k: v for k, v in variables.items() if k != layers.MASKS}
  template = model.mask_template(variables, update.batch_size) if rate > 0 else {}
  loss_fn = functools.partial(lane_loss, model=model, variables=variables,
                              train=bool(config['train']), tv=float(config['tv']),
                              mask_weight=float(config.get('mask_weight', 1e-4)), rate=rate,
                              protocol=update.protocol)
  init_z = functools.partial(init_lane_variables, shape=(update.batch_size, *update.input_shape),
                             num_classes=update.num_classes, init=config['init'],
                             template=template, rate=rate)
  return inverting.run(key, config, loss_fn=loss_fn, init_z=init_z, project=clamp,
                       aux=_aux(update, labels), progress=progress)


def wiig_attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
                config: Mapping[str, Any], progress=None) -> AttackResult:
  """WIIG: IG run with the client's true dropout masks (the upper bound)."""
  inverting.check_config(config)
  if dropout_rate(model) > 0 and update.known_masks is None:
    raise ValueError('attack.name="wiig" needs the client\'s dropout masks; set '
                     'client.reveal_masks=True (the masks-known threat model).')
  labels = dlg.recover_labels(update, config['labels'])
  loss_fn = functools.partial(inverting.lane_loss, model=model, variables=variables,
                              train=bool(config['train']), tv=float(config['tv']),
                              protocol=update.protocol)
  init_z = functools.partial(dlg.init_dummy, shape=(update.batch_size, *update.input_shape),
                             num_classes=update.num_classes, init=config['init'],
                             label_mode='known')
  aux = _aux(update, labels)
  if dropout_rate(model) > 0:
    aux['masks'] = update.known_masks
  return inverting.run(key, config, loss_fn=loss_fn, init_z=init_z, project=inverting.box,
                       aux=aux, progress=progress)
