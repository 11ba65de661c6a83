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

`optimizer='lbfgs'` runs the same idea on iDLG's machinery instead (L2
distance, L-BFGS, masks relaxed and unconstrained): on the sigmoid DLG LeNet,
where signed Adam converges slowly even without dropout, this is the variant
that undoes Zheng's defense (BUILD_NOTES.md).

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
from dlg_jax.attacks import objectives
from dlg_jax.attacks import optimize
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


OPTIMIZERS = ('adam', 'lbfgs')


def check_config(config: Mapping[str, Any]) -> None:
  """The chosen optimiser's checks plus the mask prior's weight."""
  optimizer = config.get('optimizer', 'adam')
  if optimizer not in OPTIMIZERS:
    raise ValueError(f'attack.optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.')
  if optimizer == 'adam':
    inverting.check_config(config)
  else:
    dlg.check_config(config)
    if config['labels'] == 'optimize':
      raise ValueError('attack.labels="optimize" is DLG\'s; DIA and WIIG take labels '
                       '"idlg" or "known".')
  if float(config.get('mask_weight', 0.0)) < 0:
    raise ValueError(f'attack.mask_weight must be >= 0, got {config["mask_weight"]}.')


def _aux(update: ClientUpdate, labels: jax.Array) -> dict[str, Any]:
  aux = {'target': update.gradients, 'labels': labels}
  victim_ids = getattr(update, 'victim_ids', None)
  if victim_ids is not None:
    aux['victim_ids'] = victim_ids
  return aux


def matching_loss(z: PyTree, aux: PyTree, *, model: Model, variables: PyTree, train: bool,
                  distance: str, mask_weight: float, rate: float,
                  protocol: Protocol = protocol_lib.FEDSGD) -> jax.Array:
  """The L-BFGS variant's objective: iDLG's distance under the lane's masks.

  Masks come from `z` (optimised, with the same prior as DIA) or `aux`
  (known: WIIG); they stay unconstrained during the run because L-BFGS's line
  search has no projection — a relaxation of the {0, 1} masks like DIA's.
  """
  dummy = inverting.dummy_update(z, aux, model=model, variables=variables, train=train,
                                 protocol=protocol)
  loss = objectives.DISTANCES[distance](dummy, aux['target'])
  if 'masks' in z:
    loss = loss + mask_weight * mask_penalty(z['masks'], rate)
  return loss


def _run(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
         config: Mapping[str, Any], *, masks: str, progress=None) -> AttackResult:
  """DIA (`masks='optimize'`) or WIIG (`masks='known'`) with either optimiser."""
  check_config(config)
  labels = dlg.recover_labels(update, config['labels'], model=model, variables=variables,
                              key=jax.random.fold_in(key, dlg.LABEL_STREAM),
                              train=bool(config['train']))
  rate = dropout_rate(model)
  variables = {k: v for k, v in variables.items() if k != layers.MASKS}
  template = model.mask_template(variables, update.batch_size) if (
      rate > 0 and masks == 'optimize') else {}
  aux = _aux(update, labels)
  if masks == 'known' and rate > 0:
    if update.known_masks is None:
      raise ValueError('attack.name="wiig" needs the client\'s dropout masks; set '
                       'client.reveal_masks=True (the masks-known threat model).')
    aux['masks'] = update.known_masks
  shape = (update.batch_size, *update.input_shape)
  mask_weight = float(config.get('mask_weight', 1e-4))
  init_z = functools.partial(init_lane_variables, shape=shape, num_classes=update.num_classes,
                             init=config['init'], template=template, rate=rate)
  if config.get('optimizer', 'adam') == 'lbfgs':
    loss_fn = functools.partial(matching_loss, model=model,
                                train=bool(config['train']), distance=config['distance'],
                                mask_weight=mask_weight, rate=rate, protocol=update.protocol)
    opt = optimize.lbfgs(int(config['memory']), int(config['linesearch_steps']),
                         config.get('linesearch', 'backtracking'))
    step = functools.partial(optimize.lbfgs_step, opt, loss_fn, float(config['tol']))
    return dlg.run_lanes(key, config, aux, labels, shared={'variables': variables},
                         init_z=init_z,
                         init_lane=functools.partial(optimize.init_lane, opt, loss_fn),
                         step=step, progress=progress)
  loss_fn = functools.partial(lane_loss, model=model,
                              train=bool(config['train']), tv=float(config['tv']),
                              mask_weight=mask_weight, rate=rate, protocol=update.protocol)
  return inverting.run(key, config, loss_fn=loss_fn, init_z=init_z, project=clamp, aux=aux,
                       shared={'variables': variables}, progress=progress)


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """DIA: image and dropout masks optimised together (see the module docstring).

  Args:
    config: optimizer ('adam': the paper's, with IG's fields labels, init,
      steps, chunk, restarts, lr, tv, tol, train, schedule, plateau_patience,
      stop_patience; 'lbfgs': iDLG's fields distance, memory, linesearch,
      linesearch_steps instead of lr/tv/schedule) and mask_weight.
  """
  return _run(update, model, variables, key, config, masks='optimize', progress=progress)


def wiig_attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
                config: Mapping[str, Any], progress=None) -> AttackResult:
  """WIIG: the same attack run with the client's true dropout masks (the upper bound)."""
  return _run(update, model, variables, key, config, masks='known', progress=progress)
