"""Inverting Gradients (Geiping et al. 2020): cosine matching + TV, signed Adam.

The objective is 1 − cos(∇θ L(x̂), g) over all layers (one cosine of the
flattened gradients, optionally weighted per parameter tensor by
`attack.layer_weights`: '' uniform, 'linear' or 'exp' decay from the input
layer to the output, as Geiping et al.'s code, or an explicit tuple), plus
`tv` × total variation of x̂. Adam steps on the *sign* of the
image gradient, pixels are boxed to the data range [0, 1] after every step,
and the learning rate drops ×0.1 at 3/8, 5/8 and 7/8 of the run (or on a
plateau, as the DIA code does). Each lane keeps the lowest-loss image it has
seen; restarts run together (vmap) and the lowest objective is kept. Labels are read
off the output layer (iDLG for B = 1, `labels.batch_labels` for B > 1) or are
known to the attacker, as the config states.

References:
  Geiping, Bauermeister, Dröge, Moeller, "Inverting Gradients — How easy is
  it to break privacy in federated learning?", NeurIPS 2020.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from dlg_jax.attacks import dlg
from dlg_jax.attacks import objectives
from dlg_jax.attacks import optimize
from dlg_jax.client import protocol as protocol_lib
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, ClientUpdate, Protocol, PyTree

LABEL_MODES = ('idlg', 'known')


def lane_loss(z: PyTree, aux: PyTree, *, model: Model, variables: PyTree, train: bool,
              tv: float, protocol: Protocol = protocol_lib.FEDSGD,
              layer_weights: tuple[float, ...] | None = None) -> jax.Array:
  """Cosine gradient distance + `tv` × TV for one lane.

  `layer_weights` (one per gradient leaf, from `cosine_weights`) weighs the
  cosine per parameter tensor; None is the plain cosine.

  Dropout masks, if the model has sites, come from `z['masks']` (the attacker
  optimises them: DIA) or else `aux['masks']` (the attacker knows them: WIIG);
  with neither the model runs deterministically (plain IG). The dummy batch
  goes through the client's round (`protocol.observe`: FedSGD or FedAvg).
  """
  dummy = dummy_update(z, aux, model=model, variables=variables, train=train, protocol=protocol)
  return (objectives.cosine_distance(dummy, aux['target'], layer_weights)
          + tv * objectives.total_variation(z['image']))


def dummy_update(z: PyTree, aux: PyTree, *, model: Model, variables: PyTree, train: bool,
                 protocol: Protocol) -> PyTree:
  """What the server would see from the lane's dummy batch with the fixed labels.

  Masks from `z` (optimised), else `aux` (known), else none (see `lane_loss`).
  """
  targets = jax.nn.one_hot(aux['labels'], model.num_classes)
  masks = z['masks'] if 'masks' in z else aux.get('masks')
  return protocol_lib.observe(model, variables, z['image'], targets, protocol=protocol,
                              masks=masks, train=train)


def cosine_weights(config: Mapping[str, Any], model: Model, variables: PyTree,
                   train: bool) -> tuple[float, ...] | None:
  """Per-leaf weights for `attack.layer_weights`, or None when uniform.

  Layers are the parameter tensors in the order the forward pass uses them
  (`objectives.use_order`, one trace, no computation), input side first.
  """
  scheme = config.get('layer_weights', '')
  if isinstance(scheme, str) and not scheme:
    return None
  params = variables['params']
  x = jnp.zeros((1, *model.input_shape), jnp.float32)
  ranks = objectives.use_order(
      lambda p: model.apply({**variables, 'params': p}, x, train=train), params)
  return objectives.weights_by_use(scheme, ranks)


def lr_schedule(lr: float, steps: int) -> optax.Schedule:
  """×0.1 at 3/8, 5/8 and 7/8 of the run (Geiping et al.'s MultiStepLR)."""
  return optax.piecewise_constant_schedule(
      lr, {int(steps * f): 0.1 for f in (3 / 8, 5 / 8, 7 / 8)})


SCHEDULES = ('multistep', 'plateau')


def optimizer(config: Mapping[str, Any]) -> optax.GradientTransformationExtraArgs:
  """Adam with the run's learning-rate schedule.

  'multistep' is Geiping et al.'s (×0.1 at 3/8, 5/8, 7/8 of `steps`);
  'plateau' is the DIA code's ReduceLROnPlateau (×0.1 after `plateau_patience`
  steps without a relative improvement of 1e-4, torch's default threshold).
  """
  lr = float(config['lr'])
  if config.get('schedule', 'multistep') == 'plateau':
    return optax.chain(
        optax.adam(lr),
        optax.contrib.reduce_on_plateau(factor=0.1, patience=int(config['plateau_patience']),
                                        rtol=1e-4, accumulation_size=1))
  return optax.chain(optax.adam(lr_schedule(lr, int(config['steps']))))


def signed_image_grad(grad: PyTree) -> PyTree:
  """Geiping et al.'s sign on the image gradient; other variables keep theirs."""
  return {**grad, 'image': jnp.sign(grad['image'])}


def box(z: PyTree) -> PyTree:
  """Pixels back into the data range [0, 1]."""
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
  if config.get('schedule', 'multistep') not in SCHEDULES:
    raise ValueError(f'attack.schedule must be one of {SCHEDULES}, got {config["schedule"]!r}.')
  scheme = config.get('layer_weights', '')
  if isinstance(scheme, str) and scheme not in objectives.LAYER_WEIGHTS:
    raise ValueError(f'attack.layer_weights must be one of {objectives.LAYER_WEIGHTS} or a '
                     f'tuple with one weight per parameter tensor, got {scheme!r}.')
  if config.get('schedule') == 'plateau':
    optimize.check_positive(config, ('plateau_patience',))
  if int(config.get('stop_patience', 0)) < 0:
    raise ValueError(f'attack.stop_patience must be >= 0 (0: no early stop), '
                     f'got {config["stop_patience"]}.')


def run(key: jax.Array, config: Mapping[str, Any], *, loss_fn: optimize.LossFn,
        init_z: Callable[[jax.Array], PyTree], project: Callable[[PyTree], PyTree],
        aux: PyTree, shared: PyTree, progress=None) -> AttackResult:
  """The IG optimisation loop for any lane variables `z` holding 'image'.

  Shared by IG, DIA and WIIG: signed Adam on the image (other variables get
  their raw gradient), `project` after each step, best-so-far kept, early stop
  after `stop_patience` steps without improvement; `config.block_victims` > 0
  runs the victims in blocks of that many (`optimize.make_chunk`). `shared`: the keyword
  arguments of `loss_fn` common to every lane (`dlg.run_lanes`).
  """
  opt = optimizer(config)
  step = functools.partial(optimize.first_order_step, opt, loss_fn, float(config['tol']),
                           project, signed_image_grad,
                           patience=int(config.get('stop_patience', 0)))
  return dlg.run_lanes(key, config, aux, aux['labels'], shared=shared, init_z=init_z,
                       init_lane=functools.partial(optimize.init_lane, opt, loss_fn,
                                                   track_best=True),
                       step=step, progress=progress)


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """Reconstructs every victim's batch by cosine gradient matching.

  The attacker runs the model deterministically: under client dropout this is
  the mismatch Zheng measures and DIA removes (attacks/dia.py).

  Args:
    config: `attack` config: labels ('idlg' | 'known'), init, steps, chunk,
      restarts, lr, tv, tol, train (BatchNorm mode the attacker assumes),
      schedule ('multistep' | 'plateau', with plateau_patience), stop_patience,
      layer_weights ('' | 'linear' | 'exp' | a tuple; see `cosine_weights`).
  """
  check_config(config)
  fixed_labels = dlg.recover_labels(update, config['labels'], model=model, variables=variables,
                                    key=jax.random.fold_in(key, dlg.LABEL_STREAM),
                                    train=bool(config['train']))
  loss_fn = functools.partial(lane_loss, model=model,
                              train=bool(config['train']), tv=float(config['tv']),
                              protocol=update.protocol,
                              layer_weights=cosine_weights(config, model, variables,
                                                           bool(config['train'])))
  init_z = functools.partial(dlg.init_dummy, shape=(update.batch_size, *update.input_shape),
                             num_classes=update.num_classes, init=config['init'],
                             label_mode='known')
  aux = {'target': update.gradients, 'labels': fixed_labels, 'victim_ids': update.victim_ids}
  return run(key, config, loss_fn=loss_fn, init_z=init_z, project=box, aux=aux,
             shared={'variables': variables}, progress=progress)
