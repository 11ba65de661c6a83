"""The server as part of the threat model: what model it sends the clients.

An honest server (the default) sends the model and weights the run built,
unchanged: every result is bitwise what it was before this section existed.
A malicious one returns another (model, variables) pair, and the clients run
whatever they are sent (`experiment.setup` passes it on; the client code is
the same). Malicious servers:

- ``imprint``: Robbing the Fed (Fowl et al., ICLR 2022), an imprint block of
  `bins` brightness bins in front of the model (`server/imprint.py`); read
  out by ``attack.name='imprint'``, on one user's batch or on the sum of
  `client.users` users' updates (secure aggregation does not help).

The bins' thresholds come from PUBLIC images, never the victims':
``public='digits'`` (scikit-learn's handwritten digits, resized to the
input) or ``public='split'`` (`public_size` images of the run's own IDX or
TFDS source from `public_split`, which must differ from `data.split`).

>>> complete({})['name']
'honest'
>>> complete({'name': 'imprint', 'bins': 0})
Traceback (most recent call last):
dlg_jax.errors.ConfigError: server.bins must be a positive integer, got 0.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from dlg_jax import data as data_lib
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.server import imprint
from dlg_jax.types import PyTree

# The `server` config: every field a server reads, at its default.
DEFAULTS: dict[str, Any] = {
    'name': 'honest',  # honest | imprint
    'bins': 128,  # imprint: bins (k) of the imprint block
    'public': 'digits',  # imprint: where the bin thresholds come from (digits | split)
    'public_split': 'train',  # public='split': the split of the run's IDX/TFDS source
    'public_size': 10_000,  # public='split': images used to estimate the thresholds
}
NAMES = ('honest', 'imprint')
PUBLIC = ('digits', 'split')
_NO_SPLITS = ('photos', 'npz', 'folder', 'digits')  # sources without a public split


def complete(config: Mapping[str, Any] | None) -> dict[str, Any]:
  """`DEFAULTS` overlaid by `config`, checked on its own (no data section)."""
  cfg = {**DEFAULTS, **dict(config or {})}
  unknown = sorted(set(cfg) - set(DEFAULTS))
  if unknown:
    raise ConfigError(f'server has no field(s) {unknown}; the fields are {sorted(DEFAULTS)}.')
  if cfg['name'] not in NAMES:
    raise ConfigError(f'server.name must be one of {NAMES}, got {cfg["name"]!r}.')
  for field in ('bins', 'public_size'):
    value = cfg[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f'server.{field} must be a positive integer, got {value!r}.')
  if cfg['public'] not in PUBLIC:
    raise ConfigError(f'server.public must be one of {PUBLIC}, got {cfg["public"]!r}.')
  return cfg


def check(config: Mapping[str, Any] | None, data: Mapping[str, Any]) -> dict[str, Any]:
  """The completed `server` section, checked against the `data` section; no data read.

  Raises:
    ConfigError: naming the field and the fix.
  """
  cfg = complete(config)
  if cfg['name'] == 'honest':
    return cfg
  if data.get('normalize'):
    raise ConfigError(f'server.name={cfg["name"]!r} measures pixels in [0, 1]; set '
                      'data.normalize="" (the imprint block would see normalised inputs).')
  if cfg['public'] == 'split':
    if data['name'] in _NO_SPLITS:
      raise ConfigError(f'server.public="split" needs an IDX or TFDS source with splits; '
                        f'data.name={data["name"]!r} has none: use server.public="digits".')
    if cfg['public_split'] == data.get('split', 'test'):
      raise ConfigError(f'server.public_split={cfg["public_split"]!r} is the victims\' split '
                        '(data.split); the server may only use public images: pick another.')
  elif data['name'] == 'digits':
    raise ConfigError('server.public="digits" but the victims are digits too; use '
                      'server.public="split" or another data.name.')
  return cfg


def public_images(config: Mapping[str, Any], data: Mapping[str, Any], seed: int) -> np.ndarray:
  """(N, H, W, C) public images at the run's size and channels (server.public)."""
  size, channels = int(data['size']), int(data['channels'])
  if config['public'] == 'digits':
    return data_lib.load_digits(size=size, channels=channels, split='all').images
  public = {**dict(data), 'split': config['public_split'], 'indices': (), 'sample_seed': seed}
  return data_lib.load(public, int(config['public_size'])).images


def prepare(config: Mapping[str, Any], data: Mapping[str, Any], model: Model,
            variables: PyTree, key: jax.Array) -> tuple[Model, PyTree]:
  """The (model, variables) the server sends: unchanged when it is honest."""
  if config['name'] == 'honest':
    return model, variables
  images = public_images(config, data, seed=int(jax.random.randint(key, (), 0, 2**30)))
  return imprint.build(model, variables, images, key, bins=int(config['bins']))


def describe(config: Mapping[str, Any]) -> str:
  """One phrase for the report: what the server does to the model it sends."""
  if config.get('name', 'honest') == 'honest':
    return 'sends the model unchanged (honest)'
  return imprint.describe(config)
