"""Where the global model's weights come from: a threat-model switch.

Gradient leakage depends on the weights the server sends: untrained networks
leak more than trained ones (their gradients are larger and their features
less saturated). `config.model_init` makes the choice explicit:

* ``source='random'``: the model's initialiser from the run's key (default).
* ``source='checkpoint'``: the variables pytree saved by `save` at ``path``
  (flax.serialization msgpack; the file must match the model's structure).
* ``source='train'``: ``steps`` Adam steps (learning rate ``lr``, batches of
  ``batch_size`` drawn without replacement each step) of cross-entropy on the
  run's data set, from the random initialisation. The data set is the one the
  victims are drawn from — the issue's "N training steps on the data first";
  the model has then seen the victims' images. BatchNorm statistics are
  updated by the training steps.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import flax.serialization
import jax
import jax.numpy as jnp
import optax

from dlg_jax.client import gradients
from dlg_jax.models import Model
from dlg_jax.types import Dataset, PyTree

SOURCES = ('random', 'checkpoint', 'train')
DEFAULTS = {'source': 'random', 'path': '', 'steps': 0, 'lr': 1e-3, 'batch_size': 16}


def save(path: str, variables: PyTree) -> None:
  """Writes `variables` (params and any batch_stats) as msgpack, atomically."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'wb') as f:
    f.write(flax.serialization.to_bytes(jax.device_get(variables)))
  os.replace(tmp, path)


def load(path: str, template: PyTree) -> PyTree:
  """Reads variables saved by `save` into the structure of `template`.

  Raises:
    FileNotFoundError: no file at `path`, naming model_init.path.
    ValueError: the file does not hold this model's variables.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'model_init.path={path!r} is not a file; write one with '
                            'dlg_jax.weights.save(path, variables) or use model_init.source='
                            '"random".')
  with open(path, 'rb') as f:
    blob = f.read()
  try:
    loaded = flax.serialization.from_bytes(template, blob)
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f'model_init.path={path!r} does not hold this model\'s variables: {e}') from e
  mismatched = [jax.tree_util.keystr(p) for (p, a), b in zip(
      jax.tree_util.tree_flatten_with_path(template)[0], jax.tree.leaves(loaded))
                if jnp.shape(a) != jnp.shape(b)]
  if mismatched:
    raise ValueError(f'model_init.path={path!r}: shapes differ from the model at {mismatched[:3]}.')
  return jax.tree.map(jnp.asarray, loaded)


def check(config: Mapping[str, Any]) -> dict[str, Any]:
  """`config.model_init` with defaults filled in; ValueError on a bad field."""
  cfg = {**DEFAULTS, **dict(config or {})}
  if cfg['source'] not in SOURCES:
    raise ValueError(f'model_init.source must be one of {SOURCES}, got {cfg["source"]!r}.')
  if cfg['source'] == 'checkpoint' and not cfg['path']:
    raise ValueError('model_init.source="checkpoint" needs model_init.path (a file written '
                     'by dlg_jax.weights.save).')
  if cfg['source'] == 'train':
    for field in ('steps', 'batch_size'):
      if isinstance(cfg[field], bool) or not isinstance(cfg[field], int) or cfg[field] < 1:
        raise ValueError(f'model_init.{field} must be a positive integer for '
                         f'source="train", got {cfg[field]!r}.')
    if not float(cfg['lr']) > 0:
      raise ValueError(f'model_init.lr must be > 0, got {cfg["lr"]!r}.')
  return cfg


def train(model: Model, variables: PyTree, dataset: Dataset, key: jax.Array, *, steps: int,
          lr: float, batch_size: int) -> PyTree:
  """`steps` Adam steps of cross-entropy on `dataset`; returns the new variables."""
  images = jnp.asarray(dataset.images)
  onehot = jax.nn.one_hot(jnp.asarray(dataset.labels), model.num_classes)
  size = min(batch_size, images.shape[0])
  opt = optax.adam(lr)
  params, state = gradients.split_variables(variables)

  def loss_fn(p, s, x, t):
    if s:  # BatchNorm: train-mode forward that also returns the new statistics
      logits, new = model.module.apply({'params': p, **s}, x, train=True, mutable=list(s))
      return gradients.cross_entropy(logits, t), dict(new)
    return gradients.cross_entropy(model.module.apply({'params': p}, x, train=True), t), s

  @jax.jit
  def run(params, state, opt_state):
    def step(carry, t):
      p, s, o = carry
      idx = jax.random.choice(jax.random.fold_in(key, t), images.shape[0], (size,), replace=False)
      (_, s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, images[idx], onehot[idx])
      updates, o = opt.update(g, o, p)
      return (optax.apply_updates(p, updates), s, o), None
    return jax.lax.scan(step, (params, state, opt_state), jnp.arange(steps))[0]

  params, state, _ = run(params, state, opt.init(params))
  return {'params': params, **state}


def initial(config: Mapping[str, Any], model: Model, key: jax.Array,
            dataset: Dataset) -> PyTree:
  """The variables the server sends, as `config.model_init` says."""
  cfg = check(config)
  variables = model.init(key)  # as before this switch existed: same weights for 'random'
  k_train = jax.random.fold_in(key, 1)
  if cfg['source'] == 'checkpoint':
    return load(cfg['path'], variables)
  if cfg['source'] == 'train':
    return train(model, variables, dataset, k_train, steps=int(cfg['steps']),
                 lr=float(cfg['lr']), batch_size=int(cfg['batch_size']))
  return variables
