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

Weights holding NaN or Inf are refused either way (a corrupt checkpoint, a
diverged training run): every attack would only match NaN gradients.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from absl import logging
import flax.serialization
import jax
import jax.numpy as jnp
import msgpack
import numpy as np

from dlg_jax import files
from dlg_jax import training
from dlg_jax.errors import ConfigError, MissingFileError
from dlg_jax.models import Model
from dlg_jax.types import Dataset, PyTree

SOURCES = ('random', 'checkpoint', 'train')
DEFAULTS = {'source': 'random', 'path': '', 'steps': 0, 'lr': 1e-3, 'batch_size': 16}


def save(path: str, variables: PyTree) -> None:
  """Writes `variables` (params and any batch_stats) as msgpack, atomically."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  data = flax.serialization.to_bytes(jax.device_get(variables))
  def write(tmp: str) -> None:
    with open(tmp, 'wb') as f:
      f.write(data)
  files.atomic_write(path, write)


def load(path: str, template: PyTree) -> PyTree:
  """Reads variables saved by `save` into the structure of `template`.

  Raises:
    MissingFileError: no file at `path`, naming model_init.path.
    ConfigError: the file is not a msgpack checkpoint, does not hold this
      model's variables (names, shapes, numeric dtypes), or holds NaN or Inf.
  """
  if not os.path.isfile(path):
    raise MissingFileError(f'model_init.path={path!r} is not a file; write one with '
                            'dlg_jax.weights.save(path, variables) or use model_init.source='
                            '"random".')
  with open(path, 'rb') as f:
    blob = f.read()
  try:
    state = flax.serialization.msgpack_restore(blob)
  except (ValueError, TypeError, KeyError, msgpack.exceptions.UnpackException) as e:
    raise ConfigError(f'model_init.path={path!r} is not a checkpoint written by '
                      f'dlg_jax.weights.save (msgpack said: {e}).') from e
  expected = _leaves(flax.serialization.to_state_dict(template))
  found = _leaves(state) if isinstance(state, dict) else {}
  missing = sorted(set(expected) - set(found))  # extra leaves are ignored, as flax does
  if missing:
    raise ConfigError(f"model_init.path={path!r} does not hold this model's variables: it lacks "
                      f'{len(missing)} arrays (e.g. {", ".join(missing[:3])}); save the '
                      'checkpoint from this model with dlg_jax.weights.save.')
  found = {k: found[k] for k in expected}
  mismatched = [k for k, leaf in found.items() if np.shape(leaf) != np.shape(expected[k])
                or np.asarray(leaf).dtype.kind not in 'biuf']
  if mismatched:
    raise ConfigError(f'model_init.path={path!r}: shapes or dtypes differ from the model at '
                      f'{", ".join(mismatched[:3])}.')
  bad = nonfinite(found)
  if bad:
    raise ConfigError(f'model_init.path={path!r} holds NaN or infinite weights ({len(bad)} '
                      f'arrays, e.g. {", ".join(bad[:3])}); the checkpoint is corrupt or was '
                      'saved from a diverged run. Save finite weights, or use '
                      'model_init.source="random".')
  return jax.tree.map(jnp.asarray, flax.serialization.from_state_dict(template, state))


def _leaves(tree: PyTree) -> dict[str, Any]:
  """Leaf path ('params/Conv_0/kernel') -> leaf."""
  return {jax.tree_util.keystr(p, simple=True, separator='/'): leaf
          for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def nonfinite(variables: PyTree) -> list[str]:
  """Paths of the leaves of `variables` that hold NaN or Inf.

  >>> nonfinite({'params': {'w': np.array([1.0, np.nan]), 'b': np.zeros(2)}})
  ['params/w']
  """
  return [path for path, leaf in _leaves(variables).items() if not np.isfinite(leaf).all()]


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
    bad = nonfinite(variables)
    if bad:
      raise ConfigError(f'model_init.source="train" diverged: after {cfg["steps"]} Adam steps at '
                        f'model_init.lr={cfg["lr"]} the weights hold NaN or Inf ({len(bad)} '
                        f'arrays, e.g. {", ".join(bad[:3])}; final loss '
                        f'{history["loss"][-1]:.4g}); lower model_init.lr or model_init.steps.')
    logging.info('model_init: %d training steps, final loss %.4f', cfg['steps'],
                 history['loss'][-1])
  return variables
