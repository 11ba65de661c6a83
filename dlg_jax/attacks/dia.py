"""The Dropout Inversion Attack (DIA) and its masks-known upper bound (WIIG).

Under client dropout the shared gradient comes from a *stochastic* model: the
client's random keep-masks are part of the computation, and an attacker who
runs the model deterministically (plain IG, DLG) matches the wrong function —
the failure Zheng reads as a defense. DIA models the stochasticity instead: it
optimises per-example masks of every site's full activation shape jointly with
the image.

As in the paper and its code (dAI-SY-Group/DropoutInversionAttack; the code's
values are set in configs/dia.py, the defaults here are the solvers'):
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
distance, no TV, the L-BFGS solver with its defaults, `solvers.LBFGS_DEFAULTS`,
masks relaxed and unconstrained): on the sigmoid DLG LeNet,
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
from dlg_jax.attacks import labels as labels_lib
from dlg_jax.attacks import lanes
from dlg_jax.attacks import losses
from dlg_jax.attacks import solvers
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.models import layers
from dlg_jax.types import AttackResult, ClientUpdate, PyTree

OPTIMIZERS = ('adam', 'lbfgs')
# IG's fields and the signed-Adam solver's defaults (the paper's optimiser),
# the L-BFGS variant's fields, and DIA's own. `optimizer='lbfgs'` takes the
# L-BFGS solver's defaults for the fields both solvers read (`solvers.complete`).
DEFAULTS = {
    **solvers.LBFGS_DEFAULTS,
    'distance': 'l2',  # the L-BFGS variant's; the Adam one matches cosines, as IG
    **inverting.DEFAULTS,
    'optimizer': 'adam',  # adam (the paper's) | lbfgs (iDLG's machinery)
    'mask_weight': 1e-4,  # the per-site mask prior (DIA code); unused by WIIG
}


def dropout_rate(model: Model) -> float:
  """The rate of the model's dropout sites (one rate for all, as in the zoo)."""
  return float(getattr(model.module, 'dropout_rate', 0.0))


def init_masks(key: jax.Array, template: PyTree, rate: float) -> PyTree:
  """A Bernoulli(1 − rate) draw shaped like the client's masks."""
  return layers.sample_masks(key, template, rate)


def clamp(z: PyTree) -> PyTree:
  """Pixels boxed to [0, 1] and masks clamped to [0, 1] (relaxed Bernoulli)."""
  z = solvers.box(z)
  if 'masks' in z:
    z = {**z, 'masks': jax.tree.map(lambda m: jnp.clip(m, 0.0, 1.0), z['masks'])}
  return z


def init_lane_variables(key: jax.Array, *, shape: tuple[int, ...], num_classes: int,
                        init: str, template: PyTree, rate: float) -> PyTree:
  """Dummy image (and masks when the model has dropout sites) of one lane.

  Without sites the image comes from `key` itself, exactly as IG's does, so
  that DIA at p = 0 *is* IG.
  """
  if not template:
    return lanes.init_dummy(key, shape, num_classes, init, label_mode='known')
  k_image, k_masks = jax.random.split(key)
  z = lanes.init_dummy(k_image, shape, num_classes, init, label_mode='known')
  z['masks'] = init_masks(k_masks, template, rate)
  return z


def check_config(config: Mapping[str, Any]) -> None:
  """The chosen optimiser's checks plus the mask prior's weight."""
  optimizer = config['optimizer']
  if optimizer not in OPTIMIZERS:
    raise ConfigError(f'attack.optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.')
  if config['labels'] == 'optimize':
    raise ConfigError('attack.labels="optimize" is DLG\'s; DIA and WIIG take labels '
                      '"idlg" or "known".')
  if optimizer == 'adam':
    inverting.check_config(config)
  else:
    dlg.check_config(config)
  if float(config['mask_weight']) < 0:
    raise ConfigError(f'attack.mask_weight must be >= 0, got {config["mask_weight"]}.')


def _run(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
         config: Mapping[str, Any], *, masks: str, progress=None) -> AttackResult:
  """DIA (`masks='optimize'`) or WIIG (`masks='known'`) with either optimiser."""
  config = solvers.complete(DEFAULTS, config, check_config)
  labels = labels_lib.attack_labels(update, config, model, variables, key)
  rate = dropout_rate(model)
  variables = {k: v for k, v in variables.items() if k != layers.MASKS}
  template = model.mask_template(variables, update.batch_size) if (
      rate > 0 and masks == 'optimize') else {}
  aux = lanes.public_aux(update, labels)
  if masks == 'known' and rate > 0:
    if update.known_masks is None:
      raise ConfigError('attack.name="wiig" needs the client\'s dropout masks; set '
                        'client.reveal_masks=True (the masks-known threat model).')
    aux['masks'] = update.known_masks
  init_z = functools.partial(init_lane_variables, shape=(update.batch_size, *update.input_shape),
                             num_classes=update.num_classes, init=config['init'],
                             template=template, rate=rate)
  prior = dict(mask_weight=float(config['mask_weight']), rate=rate)
  shared = {'variables': variables}
  if config['optimizer'] == 'lbfgs':
    # iDLG's objective under the lane's masks; they stay unconstrained during
    # the run because L-BFGS's line search has no projection — a relaxation
    # of the {0, 1} masks like DIA's.
    loss_fn = losses.MatchingLoss(model, bool(config['train']), update.protocol,
                                  config['distance'], **prior)
    return solvers.run_lbfgs(key, config, loss_fn=loss_fn, init_z=init_z, aux=aux,
                             fixed_labels=labels, shared=shared, progress=progress)
  loss_fn = inverting.cosine_loss(config, model, variables, update.protocol, **prior)
  return solvers.run_adam(key, config, loss_fn=loss_fn, init_z=init_z, aux=aux, shared=shared,
                          project=clamp, progress=progress)


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """DIA: image and dropout masks optimised together (see the module docstring).

  Args:
    config: `attack` config; missing fields take `DEFAULTS`: optimizer
      ('adam': the paper's, with IG's fields and the signed-Adam solver's;
      'lbfgs': distance and the L-BFGS solver's fields instead of lr, tv,
      schedule), mask_weight.
  """
  return _run(update, model, variables, key, config, masks='optimize', progress=progress)


def wiig_attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
                config: Mapping[str, Any], progress=None) -> AttackResult:
  """WIIG: the same attack run with the client's true dropout masks (the upper bound)."""
  return _run(update, model, variables, key, config, masks='known', progress=progress)
