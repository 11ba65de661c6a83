"""Inverting Gradients (Geiping et al. 2020): cosine matching + TV, signed Adam.

The objective is 1 − cos(∇θ L(x̂), g) over all layers (one cosine of the
flattened gradients, optionally weighted per parameter tensor by
`attack.layer_weights`: '' uniform, 'linear' or 'exp' decay from the input
layer to the output, as Geiping et al.'s code, or an explicit tuple), plus
`tv` × total variation of x̂ (`losses.matching_loss`). The solver is signed
Adam (`solvers.run_adam`): the sign of the image gradient, pixels boxed to
the data range [0, 1] after every step, the learning rate ×0.1 at 3/8, 5/8
and 7/8 of the run (or on a plateau, as the DIA code does), the lowest-loss
image of each lane kept; restarts run together (vmap) and the lowest
objective is kept. Labels are read off the output layer (iDLG for B = 1,
`labels.batch_labels` for B > 1) or are known to the attacker, as the config
states.

References:
  Geiping, Bauermeister, Dröge, Moeller, "Inverting Gradients — How easy is
  it to break privacy in federated learning?", NeurIPS 2020.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from dlg_jax.attacks import labels as labels_lib
from dlg_jax.attacks import lanes
from dlg_jax.attacks import losses
from dlg_jax.attacks import objectives
from dlg_jax.attacks import optimize
from dlg_jax.attacks import solvers
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.models import order
from dlg_jax.types import AttackResult, ClientUpdate, PyTree

LABEL_MODES = ('idlg', 'known')
DEFAULTS = {
    'labels': 'idlg',  # idlg | known
    'init': 'randn',
    'train': True,  # the BatchNorm mode the attacker assumes
    'tv': 1e-4,
    # Per-layer weights of the cosine: '' (uniform) | 'linear' | 'exp' (decay from
    # the input layer to the output, Geiping et al.'s code) | a tuple, one weight
    # per parameter tensor in forward order (set it in a config file).
    'layer_weights': '',
    **solvers.ADAM_DEFAULTS,
}


def cosine_weights(config: Mapping[str, Any], model: Model, variables: PyTree,
                   train: bool) -> tuple[float, ...] | None:
  """Per-leaf weights for `attack.layer_weights`, or None when uniform.

  Layers are the parameter tensors in the order the forward pass uses them
  (`models.order.use_order`, one trace, no computation), input side first.
  """
  scheme = config.get('layer_weights', '')
  if isinstance(scheme, str) and not scheme:
    return None
  params = variables['params']
  x = jnp.zeros((1, *model.input_shape), jnp.float32)
  ranks = order.use_order(
      lambda p: model.apply({**variables, 'params': p}, x, train=train), params)
  return objectives.weights_by_use(scheme, ranks)


def check_cosine(config: Mapping[str, Any]) -> None:
  """Init, TV weight and layer weights of the cosine objective (IG, DIA with Adam)."""
  optimize.check_choice(config, 'init', lanes.INITS)
  if float(config['tv']) < 0:
    raise ConfigError(f'attack.tv must be >= 0, got {config["tv"]}.')
  scheme = config['layer_weights']
  if isinstance(scheme, str) and scheme not in objectives.LAYER_WEIGHTS:
    raise ConfigError(f'attack.layer_weights must be one of {objectives.LAYER_WEIGHTS} or a '
                      f'tuple with one weight per parameter tensor, got {scheme!r}.')
  solvers.check_adam(config)


def check_config(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming the field for a bad value (of a completed config)."""
  if config['labels'] not in LABEL_MODES:
    raise ConfigError(f'attack.labels for Inverting Gradients must be one of {LABEL_MODES}, '
                      f'got {config["labels"]!r}.')
  check_cosine(config)


def cosine_loss(config: Mapping[str, Any], model: Model, variables: PyTree,
                protocol, **prior) -> optimize.LossFn:
  """IG's lane loss (cosine + tv × TV) for `config`; `prior`: DIA's mask prior."""
  train = bool(config['train'])
  return losses.MatchingLoss(model, train, protocol, 'cosine',
                             layer_weights=cosine_weights(config, model, variables, train),
                             tv=float(config['tv']), **prior)


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """Reconstructs every victim's batch by cosine gradient matching.

  The attacker runs the model deterministically: under client dropout this is
  the mismatch Zheng measures and DIA removes (attacks/dia.py).

  Args:
    config: `attack` config; missing fields take `DEFAULTS` (labels ('idlg' |
      'known'), init, train, tv, layer_weights (see `cosine_weights`), and
      the signed-Adam solver's `solvers.ADAM_DEFAULTS`).
  """
  config = solvers.complete(DEFAULTS, config, check_config)
  fixed_labels = labels_lib.attack_labels(update, config, model, variables, key)
  init_z = functools.partial(lanes.init_dummy, shape=(update.batch_size, *update.input_shape),
                             num_classes=update.num_classes, init=config['init'],
                             label_mode='known')
  return solvers.run_adam(key, config, loss_fn=cosine_loss(config, model, variables,
                                                           update.protocol),
                          init_z=init_z, aux=lanes.public_aux(update, fixed_labels),
                          shared={'variables': variables}, progress=progress)
