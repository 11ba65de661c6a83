"""Inverting Gradients (Geiping et al. 2020): cosine matching + TV, signed Adam.

The objective is 1 − cos(∇θ L(x̂), g) over all layers (one cosine of the
flattened gradients; per-layer weights are not implemented yet), plus `tv` ×
total variation of x̂. Adam steps on the *sign* of the
image gradient, pixels are boxed to the data range [0, 1] after every step,
and the learning rate drops ×0.1 at 3/8, 5/8 and 7/8 of the run. Restarts run
together (vmap); the lowest final objective is kept. Labels come from iDLG
(batch size 1) or are known to the attacker, as the config states.

References:
  Geiping, Bauermeister, Dröge, Moeller, "Inverting Gradients — How easy is
  it to break privacy in federated learning?", NeurIPS 2020.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from dlg_jax.attacks import dlg
from dlg_jax.attacks import objectives
from dlg_jax.attacks import optimize
from dlg_jax.client import gradients
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, ClientUpdate, PyTree

LABEL_MODES = ('idlg', 'known')


def _lane_loss(z: PyTree, aux: PyTree, *, model: Model, variables: PyTree, train: bool,
               tv: float) -> jax.Array:
  targets = jax.nn.one_hot(aux['labels'], model.num_classes)
  dummy = gradients.batch_gradients(model, variables, z['image'], targets, train=train)
  return objectives.cosine_distance(dummy, aux['target']) + tv * objectives.total_variation(
      z['image'])


def lr_schedule(lr: float, steps: int) -> optax.Schedule:
  """×0.1 at 3/8, 5/8 and 7/8 of the run (Geiping et al.'s MultiStepLR)."""
  return optax.piecewise_constant_schedule(
      lr, {int(steps * f): 0.1 for f in (3 / 8, 5 / 8, 7 / 8)})


def _signed_image_grad(grad: PyTree) -> PyTree:
  return {**grad, 'image': jnp.sign(grad['image'])}


def _box(z: PyTree) -> PyTree:
  return {**z, 'image': jnp.clip(z['image'], 0.0, 1.0)}


def check_config(config: Mapping[str, Any]) -> None:
  """Raises ValueError naming the field for a bad value."""
  if config['labels'] not in LABEL_MODES:
    raise ValueError(f'attack.labels for Inverting Gradients must be one of {LABEL_MODES}, '
                     f'got {config["labels"]!r}.')
  if config['init'] not in dlg.INITS:
    raise ValueError(f'attack.init must be one of {dlg.INITS}, got {config["init"]!r}.')
  optimize.check_positive(config, ('steps', 'restarts', 'chunk'))
  if not float(config['lr']) > 0 or float(config['tv']) < 0:
    raise ValueError(f'attack.lr must be > 0 and attack.tv >= 0, got {config["lr"]}, '
                     f'{config["tv"]}.')


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """Reconstructs every victim's batch by cosine gradient matching.

  Args:
    config: `attack` config: labels ('idlg' | 'known'), init, steps, chunk,
      restarts, lr, tv, tol, train (BatchNorm mode the attacker assumes).
  """
  check_config(config)
  fixed_labels = dlg.recover_labels(update, config['labels'])
  loss_fn = functools.partial(_lane_loss, model=model, variables=variables,
                              train=bool(config['train']), tv=float(config['tv']))
  opt = optax.adam(lr_schedule(float(config['lr']), int(config['steps'])))
  init_z = functools.partial(dlg.init_dummy, shape=(update.batch_size, *update.input_shape),
                             num_classes=update.num_classes, init=config['init'],
                             label_mode='known')
  step = functools.partial(optimize.first_order_step, opt, loss_fn, float(config['tol']),
                           _box, _signed_image_grad)
  aux = {'target': update.gradients, 'labels': fixed_labels}
  return dlg.run_lanes(key, config, aux, fixed_labels, init_z=init_z,
                       init_lane=functools.partial(optimize.init_lane, opt, loss_fn),
                       step=step, progress=progress)
