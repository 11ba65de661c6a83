"""Utility of a defense: train a model with the defended gradient, measure accuracy.

A defense is worth its two numbers together: how much it stops the attack and
how much accuracy it costs. `train` runs optax (Adam by default) where every
step's gradient passes through the same defense chain the client applies
before sharing (`client/defenses.py`, built from the same spec list), so the
accuracy column of a sweep and its attack column describe one defense.

* Without `dp_sgd` in the chain: fixed-size batches drawn uniformly without
  replacement each step; the batch gradient goes through the chain's aggregate
  stage (noise, quantisation, pruning), as the client's shared update does.
* With `dp_sgd` (DP-SGD, Abadi et al. 2016): per-example gradients (vmap,
  `client/gradients.py`), clipped by the chain's per-example stage, summed and
  divided by the *expected* batch size B, then noised with std z·C/B by the
  aggregate stage. Batches are Poisson-sampled with rate q = B/N (what the
  accountant assumes) or, with ``DPConfig(sampling='fixed')``, drawn as fixed-size
  batches without replacement (the common approximation). Under jit a Poisson
  batch is padded to a static ``max_batch`` = B + 4√B + 1 slots, absent slots
  weighing 0; steps whose draw exceeds it are truncated and counted in the
  history (``truncated_steps``). ε for (z, q, T, δ) comes from
  `accounting.dp_sgd_epsilon`.

The step is jitted once and run in `lax.scan` chunks; every key is folded from
the caller's key and the step number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import functools
import math
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlg_jax.client import accounting
from dlg_jax.client import defenses as defenses_lib
from dlg_jax.client import gradients
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.models import layers
from dlg_jax.types import Dataset, PyTree

SAMPLING = ('poisson', 'fixed')


@dataclasses.dataclass(frozen=True)
class DPConfig:
  """How a DP-SGD training run samples its batches and states its guarantee.

  Attributes:
    delta: the δ of the reported (ε, δ); below 1/N is customary.
    sampling: 'poisson' (each example joins a step's batch with probability
      q = B/N; what the accountant assumes) or 'fixed' (B without replacement).
    accountant: 'rdp' or 'pld' (see `accounting.dp_sgd_epsilon`).
  """
  delta: float = 1e-5
  sampling: str = 'poisson'
  accountant: str = 'rdp'


def _as_defense(defense: defenses_lib.Defense | Sequence[Mapping[str, Any]] | None
                ) -> defenses_lib.Defense:
  if defense is None:
    return defenses_lib.identity()
  if isinstance(defense, defenses_lib.Defense):
    return defense
  return defenses_lib.build(list(defense))


def _as_dp(dp: DPConfig | Mapping[str, Any] | None) -> DPConfig:
  dp = DPConfig() if dp is None else dp
  if not isinstance(dp, DPConfig):
    dp = DPConfig(**dict(dp))
  if dp.sampling not in SAMPLING:
    raise ConfigError(f'dp.sampling must be one of {list(SAMPLING)}, got {dp.sampling!r}.')
  return dp


def max_poisson_batch(batch_size: int) -> int:
  """The static padded size of a Poisson batch of mean `batch_size`.

  B + 4√B + 1 slots: a Binomial(N, B/N) draw exceeds it with probability of
  order 1e-5 per step (a 4-sigma event of its normal approximation).

  >>> max_poisson_batch(64)
  97
  """
  return batch_size + int(math.ceil(4 * math.sqrt(batch_size))) + 1


def _loss_and_state(params: PyTree, model: Model, state: PyTree, x: jax.Array,
                    targets: jax.Array, masks: PyTree | None) -> tuple[jax.Array, PyTree]:
  """Mean cross-entropy in training mode, and BatchNorm statistics of this batch.

  Through `model.apply`, like evaluation and the client, so that a model's
  own first layer (`preprocess.NormalizedModel`) is trained with.
  """
  logits, new_state = model.apply({'params': params, **state}, x, masks=masks, train=True,
                                  mutable=True)
  return gradients.cross_entropy(logits, targets), new_state


def _sample(key: jax.Array, n: int, batch_size: int, poisson: bool
            ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(indices, 0/1 weights, number drawn) of one step's batch."""
  if not poisson:
    idx = jax.random.choice(key, n, (batch_size,), replace=False)
    return idx, jnp.ones((batch_size,), jnp.float32), jnp.asarray(batch_size)
  k_join, k_order = jax.random.split(key)
  joined = jax.random.uniform(k_join, (n,)) < batch_size / n
  # Members first, in random order; the padded slots after them weigh 0.
  order = jnp.argsort(jnp.where(joined, jax.random.uniform(k_order, (n,)), 2.0))
  idx = order[:max_poisson_batch(batch_size)]
  return idx, joined[idx].astype(jnp.float32), jnp.sum(joined)


def _make_step(model: Model, state: PyTree, images: jax.Array, labels: jax.Array,
               optimizer: optax.GradientTransformation, defense: defenses_lib.Defense,
               batch_size: int, poisson: bool, dropout_rate: float, key: jax.Array):
  """One training step `(carry, t) -> (carry, (loss, drawn))`, pure in its inputs."""
  n = images.shape[0]
  per_example = defense.needs_per_example
  slots = max_poisson_batch(batch_size) if poisson else batch_size

  def step(carry, t):
    params, opt_state, state = carry
    k_batch, k_drop, k_def = jax.random.split(jax.random.fold_in(key, t), 3)
    idx, weight, drawn = _sample(k_batch, n, batch_size, poisson)
    x = images[idx]
    targets = jax.nn.one_hot(labels[idx], model.num_classes)
    masks = _masks(model, params, state, k_drop, slots, dropout_rate)
    if per_example:
      grads = gradients.per_example_gradients(model, {'params': params, **state}, x, targets,
                                              masks=masks, train=True)
      grads = defense.per_example(grads, jax.random.fold_in(k_def, 0))
      # Sum over the members, divided by the expected batch size (DP-SGD).
      grads = jax.tree.map(lambda g: jnp.tensordot(weight, g, axes=1) / batch_size, grads)
      grads = defense.aggregate(grads, jax.random.fold_in(k_def, 1), batch_size=batch_size)
      logits = model.apply({'params': params, **state}, x, masks=masks, train=True)
      losses = -jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1)
      loss = jnp.sum(weight * losses) / jnp.maximum(jnp.sum(weight), 1.0)
    else:
      (loss, new_state), grads = jax.value_and_grad(_loss_and_state, has_aux=True)(
          params, model, state, x, targets, masks)
      state = {**state, **new_state}
      grads = defense.aggregate(grads, k_def, batch_size=batch_size)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state, state), (loss, drawn)

  return step


def _masks(model: Model, params: PyTree, state: PyTree, key: jax.Array, slots: int,
           rate: float) -> PyTree | None:
  if rate <= 0:
    return None
  template = model.mask_template({'params': params, **state}, slots)
  return layers.sample_masks(key, template, rate) if template else None


def _dp_params(defense: defenses_lib.Defense) -> dict[str, Any] | None:
  """The dp_sgd stage's spec, None without one; two stages are refused."""
  stages = [s for s in defense.specs if s.get('name') == 'dp_sgd']
  if len(stages) > 1:
    raise ConfigError('the defense chain has more than one dp_sgd stage; the accountant '
                     'covers one (z, C) per step.')
  return dict(stages[0]) if stages else None


def train(model: Model, variables: PyTree, dataset: Dataset, *, steps: int, batch_size: int,
          lr: float, key: jax.Array,
          defense: defenses_lib.Defense | Sequence[Mapping[str, Any]] | None = None,
          dp: DPConfig | Mapping[str, Any] | None = None,
          optimizer: optax.GradientTransformation | None = None,
          chunk: int = 100) -> tuple[PyTree, dict[str, Any]]:
  """Trains `model` on `dataset` with every step's gradient defended.

  Args:
    model: from `models.build`; dropout sites draw fresh masks each step.
    variables: initial variables (`model.init`).
    dataset: the training split, images (N, H, W, C) in [0, 1], labels (N,).
    steps: optimiser steps T.
    batch_size: B (the expected size under Poisson sampling).
    lr: Adam's learning rate (ignored when `optimizer` is given).
    key: the run's key; step t uses ``fold_in(key, t)``.
    defense: a `Defense` or a list of defense specs (as ``client.defenses``).
    dp: sampling and δ for a chain with dp_sgd (default `DPConfig()`); an
      error without dp_sgd, where it would mean nothing.
    optimizer: an optax transform instead of ``optax.adam(lr)``.
    chunk: steps per compiled `lax.scan` call (the logging granularity).

  Returns:
    (trained variables, history): history has ``loss`` (mean per chunk),
    ``seconds``, ``steps``, ``batch_size``, ``defenses`` and, with dp_sgd,
    ``noise_multiplier``, ``clip_norm``, ``sampling_rate``, ``delta``,
    ``epsilon``, ``accountant``, ``sampling``, ``truncated_steps``.
  """
  defense = _as_defense(defense)
  dp_spec = _dp_params(defense)
  if dp is not None and dp_spec is None:
    raise ConfigError('dp options only apply to a defense chain with dp_sgd; drop dp or add '
                     "{'name': 'dp_sgd', 'clip_norm': C, 'noise_multiplier': z}.")
  n = len(dataset.labels)
  for name, value in (('steps', steps), ('batch_size', batch_size), ('chunk', chunk)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ConfigError(f'training {name} must be a positive integer, got {value!r}.')
  if batch_size > n:
    raise ConfigError(f'training batch_size={batch_size} exceeds the {n} training images.')
  dp = _as_dp(dp) if dp_spec is not None else None
  poisson = dp is not None and dp.sampling == 'poisson'
  history: dict[str, Any] = {'steps': int(steps), 'batch_size': int(batch_size),
                             'defenses': defense.describe()}
  if dp is not None:
    # Fails before any compile if (z, q, T, delta) are out of range.
    history.update(accounting.dp_sgd_privacy(dp_spec['noise_multiplier'], batch_size / n,
                                              steps, dp.delta, dp.accountant))
    history.update(clip_norm=float(dp_spec['clip_norm']), sampling=dp.sampling)

  params, state = gradients.split_variables(variables)
  optimizer = optimizer or optax.adam(lr)
  opt_state = optimizer.init(params)
  step = _make_step(model, state, jnp.asarray(dataset.images), jnp.asarray(dataset.labels),
                    optimizer, defense, int(batch_size), poisson,
                    float(getattr(model.module, 'dropout_rate', 0.0)), key)

  @functools.partial(jax.jit, static_argnames=('length',))
  def run_chunk(carry, start, *, length):
    return jax.lax.scan(step, carry, start + jnp.arange(length))

  carry = (params, opt_state, state)
  losses, truncated, done = [], 0, 0
  t0 = time.perf_counter()
  while done < steps:
    length = min(chunk, steps - done)
    carry, (loss, drawn) = run_chunk(carry, done, length=length)
    loss = np.asarray(loss)
    if not np.all(np.isfinite(loss)):
      raise RuntimeError(f'training loss became non-finite between steps {done} and '
                         f'{done + length}; lower lr.')
    losses.append(float(loss.mean()))
    if poisson:
      truncated += int(np.sum(np.asarray(drawn) > max_poisson_batch(batch_size)))
    done += length
    logging.info('train step %d/%d loss %.4f', done, steps, losses[-1])
  params, _, state = carry
  history.update(loss=losses, seconds=time.perf_counter() - t0)
  if poisson:
    history['truncated_steps'] = truncated
  return {'params': params, **state}, history


def evaluate(model: Model, variables: PyTree, dataset: Dataset, batch_size: int = 500) -> float:
  """Top-1 accuracy on `dataset` (no dropout; BatchNorm on running averages)."""
  @jax.jit
  def correct(x, y):
    logits = model.apply(variables, x, train=False)
    return jnp.sum(jnp.argmax(logits, axis=-1) == y)

  total = 0
  for start in range(0, len(dataset.labels), batch_size):
    total += int(correct(jnp.asarray(dataset.images[start:start + batch_size]),
                         jnp.asarray(dataset.labels[start:start + batch_size])))
  return total / len(dataset.labels)
