"""The utility column: test accuracy of a model trained under a defense, cached.

A defense (or a dropout rate) is worth two numbers together: how much it
stops the attack and how much accuracy it costs. `measure` trains the sweep's
model on scikit-learn's digits (offline, 10 classes, the same seeded
train/test split for every run) with the defense chain on every step's
gradient and dropout active (`training.train`), and returns the test
accuracy (`training.evaluate`) with the training history.

Every sweep that has this column reads one config section, ``utility``,
whose fields and defaults are `DEFAULTS` (configs start from it); ``steps=0``
leaves the column empty and trains nothing.

Each run is cached in ``workdir/utility/<key>.json`` (`key`: model, defense,
strength, dropout rate), written atomically, together with the settings it
was trained with: a rerun with the same settings reads the file back and
never trains twice; changed settings train again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import functools
import json
import os
from typing import Any

from absl import logging
import jax

from dlg_jax import data as data_lib
from dlg_jax import models
from dlg_jax import report
from dlg_jax import training
from dlg_jax.errors import ConfigError
from dlg_jax.sweeps import grid
from dlg_jax.types import Dataset

# The ``utility`` config section: its fields and their defaults.
DEFAULTS = {
    'data': 'digits',  # the only offline set with a test split
    'steps': 1000,  # optimiser steps T; 0: no utility column
    'batch_size': 64,  # B (the expected batch under Poisson sampling)
    'lr': 1e-3,  # Adam
    'seed': 0,  # the training run's key (initialisation and batches)
    'chunk': 100,  # steps per compiled lax.scan call
    # DP-SGD's batches and (ε, δ), read only for a chain with dp_sgd
    # (training.DPConfig); δ below 1/N for N = 1,347 digits.
    'sampling': 'poisson',  # poisson | fixed
    'delta': 1e-5,
    'accountant': 'rdp',  # rdp | pld
}


def check(settings: Mapping[str, Any]) -> dict[str, Any]:
  """The ``utility`` section over `DEFAULTS`, or a ConfigError naming what is wrong.

  >>> check({'steps': 20})['batch_size']
  64
  >>> check({'data': 'mnist'})
  Traceback (most recent call last):
  ...
  dlg_jax.errors.ConfigError: config.utility.data must be 'digits' (the offline set), got 'mnist'.
  """
  settings = grid.plain(settings)
  unknown = sorted(set(settings) - set(DEFAULTS))
  if unknown:
    raise ConfigError(f'config.utility has unknown field(s) {unknown}; its fields are '
                      f'{list(DEFAULTS)}.')
  settings = {**DEFAULTS, **settings}
  if settings['data'] != 'digits':
    raise ConfigError(f"config.utility.data must be 'digits' (the offline set), got "
                      f"{settings['data']!r}.")
  return settings


def key(model_name: str, defense: str = 'none', strength: Any = None,
        rate: float = 0.0) -> str:
  """The cache file's name for one training run.

  >>> key('lenet', 'gaussian', 1e-4), key('mlp', rate=0.25)
  ('lenet-gaussian-0.0001-p0', 'mlp-none-p0.25')
  """
  return grid.slug(model_name, defense, strength, f'p{float(rate):g}')


@functools.cache
def digits(size: int, channels: int, split: str) -> Dataset:
  """scikit-learn's digits at the sweep's image shape, loaded once per process."""
  return data_lib.load_digits(size=size, channels=channels, split=split)


def train_examples() -> int:
  """N, the utility runs' training set size (DP-SGD's sampling rate is B / N)."""
  return len(digits(8, 1, 'train').labels)


def _inputs(settings, data_config, model, specs) -> dict[str, Any]:
  # What the record depends on, as JSON gives it back (tuples become lists).
  inputs = {'utility': settings, 'model': model, 'defenses': specs,
            'image': [int(data_config['size']), int(data_config['channels'])]}
  return json.loads(json.dumps(inputs))


def measure(config: Mapping[str, Any], workdir: str, *, model_name: str,
            model: Mapping[str, Any], defense: str = 'none', strength: Any = None,
            specs: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
  """Test accuracy of `model` trained on digits under `specs`; cached.

  Args:
    config: the sweep's config; reads its ``utility`` section and the image
      shape of its ``data`` (``size``, ``channels``).
    workdir: the sweep's folder; the record goes to ``utility/<key>.json``.
    model_name: the model's name in the sweep (its rows' label).
    model: the model config (`models.build`); its ``dropout_rate`` is the
      rate of the cache key.
    defense, strength: the grid point's labels ('none', None without one).
    specs: the defense chain, as ``client.defenses``.

  Returns:
    None when ``utility.steps`` is 0; otherwise the record: ``test_accuracy``,
    ``train_examples``, the labels, the settings (``inputs``) and the
    `training.train` history (``epsilon`` and friends under dp_sgd).
  """
  settings = check(config['utility'])
  if int(settings['steps']) <= 0:
    return None
  model = grid.plain(model)
  specs = [dict(s) for s in grid.plain(list(specs))]
  rate = float(model.get('dropout_rate', 0.0))
  name = key(model_name, defense, strength, rate)
  path = os.path.join(workdir, 'utility', f'{name}.json')
  inputs = _inputs(settings, config['data'], model, specs)
  if os.path.exists(path):
    cached = grid.read_record(path)
    if cached.get('inputs') == inputs:
      return cached
    logging.info('utility: settings changed since %s was written; training again', path)

  size, channels = int(config['data']['size']), int(config['data']['channels'])
  train_set, test_set = digits(size, channels, 'train'), digits(size, channels, 'test')
  net = models.build(model, input_shape=(size, size, channels),
                     num_classes=train_set.num_classes)
  k_init, k_train = jax.random.split(jax.random.key(int(settings['seed'])))
  dp = ({name: settings[name] for name in ('delta', 'sampling', 'accountant')}
        if any(s.get('name') == 'dp_sgd' for s in specs) else None)
  variables, history = training.train(
      net, net.init(k_init), train_set, steps=int(settings['steps']),
      batch_size=int(settings['batch_size']), lr=float(settings['lr']), key=k_train,
      defense=specs, dp=dp, chunk=int(settings['chunk']))
  record = {'model': model_name, 'defense': defense, 'strength': strength, 'rate': rate,
            'test_accuracy': float(training.evaluate(net, variables, test_set)),
            'train_examples': len(train_set.labels), **history, 'inputs': inputs}
  os.makedirs(os.path.dirname(path), exist_ok=True)
  report.write_json(path, record)
  print(f'[utility] {name}: test accuracy '
        f'{record["test_accuracy"]:.4f} ({history["seconds"]:.0f} s)', flush=True)
  return grid.read_record(path)
