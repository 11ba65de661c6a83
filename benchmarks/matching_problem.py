"""One gradient-matching problem, as the speed and memory benchmarks pose it.

A zoo model with its initial weights, one random victim image with a label,
the update its client shares (`protocol.observe`, the client's own code) and
the attacker's matching loss (`losses.MatchingLoss`, the attacks' own). The
benchmarks that time or size a model's attack programs (models_speed.py,
compile_time.py, lane_memory.py) and the PyTorch reference that checks them
(torch_reference.py) all build it here, so that they measure the same thing.

The images come from numpy (not a JAX key) because the PyTorch reference
loads the very same arrays.

>>> p = build({'name': 'mlp'}, 4, 3, channels=1)
>>> p.truth.shape, p.dummy.shape, p.label.shape
((1, 4, 4, 1), (1, 4, 4, 1), (1,))
>>> sorted(shared_gradient(p, train=False))
['dense1', 'dense2', 'head']
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import numpy as np

from dlg_jax import models
from dlg_jax.attacks import losses
from dlg_jax.client import protocol


class Problem(NamedTuple):
  """The model, its variables, the victim (`truth`, `label`) and a start image (`dummy`), NHWC."""
  model: models.Model
  variables: Any
  truth: np.ndarray
  dummy: np.ndarray
  label: np.ndarray


def build(config: Mapping[str, Any], size: int, num_classes: int, *, seed: int = 0,
          channels: int = 3) -> Problem:
  """The model `config` (a `model` config: name and options) at `size`², weights from `seed`."""
  model = models.build(dict(config), (size, size, channels), num_classes)
  variables = model.init(jax.random.key(seed))
  rng = np.random.default_rng(seed)
  truth = rng.uniform(size=(1, size, size, channels)).astype(np.float32)
  dummy = rng.uniform(size=(1, size, size, channels)).astype(np.float32)
  label = np.array([int(rng.integers(num_classes))], np.int32)
  return Problem(model, variables, truth, dummy, label)


def shared_gradient(problem: Problem, *, train: bool) -> Any:
  """The victim's FedSGD update: `protocol.observe`, jitted.

  Jitted because eagerly each op of the forward and backward pass is its own
  small program: ≈60 s for DenseNet-121 before anything is measured.
  """
  model = problem.model
  onehot = jax.nn.one_hot(problem.label, model.num_classes)
  return jax.jit(lambda v, x: protocol.observe(model, v, x, onehot, train=train))(
      problem.variables, problem.truth)


def loss_function(model: models.Model, *, distance: str, train: bool,
                  tv: float = 0.0) -> losses.MatchingLoss:
  """One lane's objective `(z, aux, variables=...)`, as the attacks bind it."""
  return losses.MatchingLoss(model, train, protocol.FEDSGD, distance, tv=tv)


def jax_side(problem: Problem, *, distance: str, tv: float,
             train: bool) -> tuple[Any, float, np.ndarray]:
  """(shared gradient, matching loss at `dummy`, its ∇x as numpy NHWC)."""
  target = shared_gradient(problem, train=train)
  loss_fn = loss_function(problem.model, distance=distance, tv=tv, train=train)
  aux = {'target': target, 'labels': problem.label}
  loss, grad = jax.jit(jax.value_and_grad(lambda z, a, v: loss_fn(z, a, variables=v)))(
      {'image': problem.dummy}, aux, problem.variables)
  return target, float(loss), np.asarray(grad['image'])
