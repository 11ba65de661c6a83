"""Where the global model's weights come from: a threat-model switch.

Gradient leakage depends on the weights the server sends: untrained networks
leak more than trained ones (their gradients are larger and their features
less saturated). `config.model_init` makes the choice explicit:

* ``source='random'``: the model's initialiser from the run's key (default).
* ``source='checkpoint'``: the variables pytree saved by `save` at ``path``
  (flax.serialization msgpack; the file must match the model's structure).
* ``source='train'``: ``steps`` Adam steps (learning rate ``lr``, batches of
  ``batch_size`` drawn without replacement each step; `training.train`, no
  defense) of cross-entropy on the run's data set, from the random
  initialisation. The data set is the one the
  victims are drawn from — the issue's "N training steps on the data first";
  the model has then seen the victims' images. BatchNorm statistics are
  updated by the training steps.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from absl import logging
import flax.serialization
import jax
import jax.numpy as jnp

from dlg_jax import training
from dlg_jax.errors import ConfigError, MissingFileError
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
    raise MissingFileError(f'model_init.path={path!r} is not a file; write one with '
                            'dlg_jax.weights.save(path, variables) or use model_init.source='
                            '"random".')
  with open(path, 'rb') as f:
    blob = f.read()
  try:
    loaded = flax.serialization.from_bytes(template, blob)
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(f'model_init.path={path!r} does not hold this model\'s variables: {e}') from e
  mismatched = [jax.tree_util.keystr(p) for (p, a), b in zip(
      jax.tree_util.tree_flatten_with_path(template)[0], jax.tree.leaves(loaded))
                if jnp.shape(a) != jnp.shape(b)]
  if mismatched:
    raise ConfigError(f'model_init.path={path!r}: shapes differ from the model at {mismatched[:3]}.')
  return jax.tree.map(jnp.asarray, loaded)


def check(config: Mapping[str, Any]) -> dict[str, Any]:
  """`config.model_init` with defaults filled in; ValueError on a bad field."""
  cfg = {**DEFAULTS, **dict(config or {})}
  if cfg['source'] not in SOURCES:
    raise ConfigError(f'model_init.source must be one of {SOURCES}, got {cfg["source"]!r}.')
  if cfg['source'] == 'checkpoint' and not cfg['path']:
    raise ConfigError('model_init.source="checkpoint" needs model_init.path (a file written '
                     'by dlg_jax.weights.save).')
  if cfg['source'] == 'train':
    for field in ('steps', 'batch_size'):
      if isinstance(cfg[field], bool) or not isinstance(cfg[field], int) or cfg[field] < 1:
        raise ConfigError(f'model_init.{field} must be a positive integer for '
                         f'source="train", got {cfg[field]!r}.')
    if not float(cfg['lr']) > 0:
      raise ConfigError(f'model_init.lr must be > 0, got {cfg["lr"]!r}.')
  return cfg


def initial(config: Mapping[str, Any], model: Model, key: jax.Array,
            dataset: Dataset) -> PyTree:
  """The variables the server sends, as `config.model_init` says."""
  cfg = check(config)
  variables = model.init(key)  # as before this switch existed: same weights for 'random'
  k_train = jax.random.fold_in(key, 1)
  if cfg['source'] == 'checkpoint':
    return load(cfg['path'], variables)
  if cfg['source'] == 'train':
    batch = min(int(cfg['batch_size']), len(dataset.labels))
    variables, history = training.train(model, variables, dataset, steps=int(cfg['steps']),
                                        batch_size=batch, lr=float(cfg['lr']), key=k_train)
    logging.info('model_init: %d training steps, final loss %.4f', cfg['steps'],
                 history['loss'][-1])
  return variables
