"""The one lane loss every optimisation attack minimises, built from parts.

The dummy batch of a lane goes through the client's round (`protocol.observe`:
FedSGD or FedAvg) and its update is compared with the shared one; the attacks
differ only in which parts they switch on:

  attack         distance          tv    mask prior   dummy labels    masks
  DLG            l2                –     –            optimised       –
  iDLG           l2                –     –            fixed           –
  IG             cosine (+ layer   tv    –            fixed           –
                 weights)
  DIA (Adam)     cosine            tv    mask_weight  fixed           optimised
  DIA (L-BFGS)   l2                –     mask_weight  fixed           optimised
  WIIG           as DIA            –     –            fixed           known
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax

from dlg_jax.attacks import objectives
from dlg_jax.client import protocol as protocol_lib
from dlg_jax.models import Model
from dlg_jax.types import Protocol, PyTree


def dummy_update(z: PyTree, aux: PyTree, *, model: Model, variables: PyTree, train: bool,
                 protocol: Protocol) -> PyTree:
  """What the server would see from the lane's dummy batch.

  Labels: a softmax of `z['label_logits']` when the attack optimises them
  (DLG), else one-hot `aux['labels']`. Dropout masks, if the model has sites:
  `z['masks']` when the attack optimises them (DIA), else `aux['masks']`
  when it knows them (WIIG); with neither the model runs deterministically.
  """
  if 'label_logits' in z:
    targets = jax.nn.softmax(z['label_logits'])
  else:
    targets = jax.nn.one_hot(aux['labels'], model.num_classes)
  masks = z['masks'] if 'masks' in z else aux.get('masks')
  return protocol_lib.observe(model, variables, z['image'], targets, protocol=protocol,
                              masks=masks, train=train)


def matching_loss(z: PyTree, aux: PyTree, *, model: Model, variables: PyTree, train: bool,
                  protocol: Protocol, distance: str,
                  layer_weights: Sequence[float] | None = None, tv: float = 0.0,
                  mask_weight: float = 0.0, rate: float = 0.0) -> jax.Array:
  """One lane's objective: gradient distance + tv × TV(x̂) + mask_weight × mask prior.

  Terms with weight 0 are not computed at all, so an attack that does not use
  a prior pays nothing for it (and its numbers do not move by a rounding).

  Args:
    z: the lane's variables: 'image' (B, H, W, C), maybe 'label_logits',
      'masks' (see `dummy_update`).
    aux: the victim's public data: 'target' (the shared update), 'labels',
      maybe 'masks'.
    model, variables: the global model; train: BatchNorm mode the attacker assumes.
    protocol: the client's round.
    distance: a key of `objectives.DISTANCES` ('l2' | 'cosine').
    layer_weights: per-leaf weights of the cosine (`objectives.cosine_distance`);
      None is the plain distance.
    tv: weight of the image's total variation.
    mask_weight, rate: weight of DIA's prior `objectives.mask_penalty` on
      `z['masks']` and the dropout rate it pulls each site towards.
  """
  dummy = dummy_update(z, aux, model=model, variables=variables, train=train,
                       protocol=protocol)
  if layer_weights is not None:
    if distance != 'cosine':
      raise ValueError(f'layer weights weigh the cosine distance only, got distance {distance!r}.')
    loss = objectives.cosine_distance(dummy, aux['target'], layer_weights)
  else:
    loss = objectives.DISTANCES[distance](dummy, aux['target'])
  if tv:
    loss = loss + tv * objectives.total_variation(z['image'])
  if mask_weight and 'masks' in z:
    loss = loss + mask_weight * objectives.mask_penalty(z['masks'], rate)
  return loss


@dataclasses.dataclass(frozen=True)
class MatchingLoss:
  """`matching_loss` with its settings bound: `loss(z, aux, variables=...)`.

  Two losses with equal settings compare (and hash) equal, so a run's second
  victim chunk, device round or sweep cell reuses the compiled programs of
  the first (`solvers.programs`); a `functools.partial` would compare by
  identity and trace them again.

  >>> from dlg_jax import models
  >>> m = models.build({'name': 'mlp'}, (4, 4, 1), 3)
  >>> MatchingLoss(m, False, Protocol(), 'l2') == MatchingLoss(m, False, Protocol(), 'l2')
  True
  """
  model: Model
  train: bool
  protocol: Protocol
  distance: str
  layer_weights: tuple[float, ...] | None = None
  tv: float = 0.0
  mask_weight: float = 0.0
  rate: float = 0.0

  def __call__(self, z: PyTree, aux: PyTree, *, variables: PyTree) -> jax.Array:
    return matching_loss(z, aux, variables=variables,
                         **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
