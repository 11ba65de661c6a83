"""Training losses and the gradients a client computes from them.

These functions are shared by the client (true gradients) and every attack
(dummy gradients), so that both sides differentiate exactly the same program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlg_jax.models import Model
from dlg_jax.types import PyTree


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean cross-entropy over the batch against class probabilities.

  Soft targets are what DLG optimises (softmax of dummy label logits); hard
  labels are passed one-hot.

  >>> float(cross_entropy(jnp.zeros((1, 4)), jnp.eye(4)[:1]))  # log 4
  1.386...
  """
  return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1))


def training_loss(params: PyTree, model: Model, state: PyTree, x: jax.Array,
                  targets: jax.Array, masks: PyTree | None = None,
                  train: bool = True) -> jax.Array:
  """The client's loss for one batch; `state` holds non-trainable variables."""
  logits = model.apply({'params': params, **state}, x, masks=masks, train=train)
  return cross_entropy(logits, targets)


def split_variables(variables: PyTree) -> tuple[PyTree, PyTree]:
  """(params, everything else), e.g. BatchNorm statistics."""
  variables = dict(variables)
  params = variables.pop('params')
  return params, variables


def batch_gradients(model: Model, variables: PyTree, x: jax.Array, targets: jax.Array,
                    masks: PyTree | None = None, train: bool = True) -> PyTree:
  """Gradient of the mean loss over the batch w.r.t. the parameters."""
  params, state = split_variables(variables)
  return jax.grad(training_loss)(params, model, state, x, targets, masks, train)


def per_example_gradients(model: Model, variables: PyTree, x: jax.Array,
                          targets: jax.Array, masks: PyTree | None = None,
                          train: bool = True) -> PyTree:
  """One gradient per example (leaves gain a leading batch axis B), by vmap.

  Their mean equals `batch_gradients` for models without BatchNorm; with
  BatchNorm in train mode each example is normalised by its own statistics,
  which is what per-example clipping in DP-SGD has to assume.
  """
  params, state = split_variables(variables)

  def one(xi, ti, mi):
    mi = None if mi is None else jax.tree.map(lambda m: m[None], mi)
    return jax.grad(training_loss)(params, model, state, xi[None], ti[None], mi, train)

  return jax.vmap(one)(x, targets, masks)
