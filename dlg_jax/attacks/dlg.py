"""Gradient matching with L-BFGS: DLG, and iDLG as its analytic-label variant.

DLG (Zhu et al. 2019) optimises a dummy image *and* dummy label logits so that
the gradient they produce matches the shared one in squared L2 distance, with
L-BFGS. iDLG (Zhao et al. 2020) first reads the label off the output layer's
gradient and then optimises the image alone, which converges more reliably.

References:
  Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS 2019.
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
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, ClientUpdate, PyTree

DEFAULTS = {
    # optimize: DLG's soft labels | idlg: read off the output layer (the batch
    # rule for B > 1) | known: revealed by the client.
    'labels': 'optimize',
    'init': 'randn',  # randn: N(0, 1) (DLG code) | rand: U(0, 1) (iDLG code)
    'distance': 'l2',
    'train': True,  # the BatchNorm mode the attacker assumes
    **solvers.LBFGS_DEFAULTS,
}


def check_config(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming the field and its choices for a bad value."""
  optimize.check_choice(config, 'labels', labels_lib.LABEL_MODES)
  optimize.check_choice(config, 'init', lanes.INITS)
  optimize.check_choice(config, 'distance', tuple(sorted(objectives.DISTANCES)))
  solvers.check_lbfgs(config)


def reconstruct(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
                config: Mapping[str, Any], progress=None) -> AttackResult:
  """DLG / iDLG for a completed, checked config (`attack` fills and checks it)."""
  label_mode = config['labels']
  fixed_labels = labels_lib.attack_labels(update, config, model, variables, key)
  num_victims = jax.tree.leaves(update.gradients)[0].shape[0]
  loss_fn = losses.MatchingLoss(model, bool(config['train']), update.protocol,
                                config['distance'])
  if fixed_labels is None:  # DLG: the labels come from the lanes' logits
    aux = lanes.public_aux(update, jnp.zeros((num_victims, 0), jnp.int32))
  else:
    aux = lanes.public_aux(update, fixed_labels)
  init_z = functools.partial(lanes.init_dummy, shape=(update.batch_size, *update.input_shape),
                             num_classes=update.num_classes, init=config['init'],
                             label_mode=label_mode)
  return solvers.run_lbfgs(key, config, loss_fn=loss_fn, init_z=init_z, aux=aux,
                           fixed_labels=fixed_labels, shared={'variables': variables},
                           progress=progress)


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """Reconstructs every victim's batch from its shared gradient.

  Args:
    update: what the server received; gradients carry a leading victim axis.
    model, variables: the global model the server sent (the attacker knows it).
    key: the attacker's randomness (dummy initialisation of each restart).
    config: `attack` config; missing fields take `DEFAULTS` (labels, init,
      distance, train, and the L-BFGS solver's `solvers.LBFGS_DEFAULTS`).
    progress: optional callback(iteration, state, snapshot) after each chunk
      (`optimize.run`).
  """
  config = solvers.complete(DEFAULTS, config, check_config)
  return reconstruct(update, model, variables, key, config, progress=progress)
