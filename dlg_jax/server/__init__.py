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
  One-shot variant (`target` >= 0, `bins`=2): the two thresholds sit
  `target_width` apart around one target's brightness, so only the target
  falls between them, however many users are summed.
- ``trap_weights``: Boenisch et al. (EuroS&P 2023), no architecture change:
  trap weights in the first dense layer of an `mlp` (`server/trap_weights.py`),
  negative weights ×`trap_scale`, biases so each row fires for `trap_rate`
  of public inputs; read out by ``attack.name='trap_weights'``.
- ``qbi``: QBI (Nowak et al. 2024), the same layer with N(0, 1) weights and
  each row's bias the (1 − `trap_rate`) quantile of its pre-activation on
  public inputs (`server/qbi.py`); read out by ``attack.name='trap_weights'``
  too (one read-out: a row fired by one input gives it back).

The bins' (and the traps' biases') thresholds come from PUBLIC images, never the victims':
``public='digits'`` (scikit-learn's handwritten digits, resized to the
input) or ``public='split'`` (`public_size` images of the run's own IDX or
TFDS source from `public_split`, which must differ from `data.split`).

>>> complete({})['name']
'honest'
>>> complete({'name': 'imprint', 'bins': 0})
Traceback (most recent call last):
dlg_jax.errors.ConfigError: server.bins must be a positive integer, got 0.
>>> complete({'name': 'trap_weights', 'trap_scale': 0.5})
Traceback (most recent call last):
dlg_jax.errors.ConfigError: server.trap_scale must be a number > 1 (scales negatives), got 0.5.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from dlg_jax import data as data_lib
from dlg_jax.errors import ConfigError, check_positive_int
from dlg_jax.models import Model
from dlg_jax.server import imprint
from dlg_jax.server import qbi
from dlg_jax.server import trap_weights
from dlg_jax.types import PyTree

# The `server` config: every field a server reads, at its default.
DEFAULTS: dict[str, Any] = {
    'name': 'honest',  # honest | imprint | trap_weights | qbi
    'bins': 128,  # imprint: bins (k) of the imprint block
    'public': 'digits',  # imprint: where the bin thresholds come from (digits | split)
    'public_split': 'train',  # public='split': the split of the run's IDX/TFDS source
    'public_size': 10_000,  # public='split': images used to estimate the thresholds
    'target': -1.0,  # imprint one-shot: the target's mean brightness (< 0: off, quantile bins)
    'target_width': 4e-6,  # imprint one-shot: distance of the two bins around `target`
    'trap_scale': 1.05,  # trap_weights: factor s > 1 on the first layer's negative weights
    'trap_rate': 0.01,  # trap_weights, qbi: fraction of public inputs each row fires for (1/B)
}
NAMES = ('honest', 'imprint', 'trap_weights', 'qbi')
# Servers that set the first dense layer of an `mlp` (read by attack.name='trap_weights').
FIRST_LAYER = ('trap_weights', 'qbi')
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
    check_positive_int(f'server.{field}', cfg[field])
  scale, rate = cfg['trap_scale'], cfg['trap_rate']
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 1:
    raise ConfigError(f'server.trap_scale must be a number > 1 (scales negatives), got {scale!r}.')
  if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
    raise ConfigError(f'server.trap_rate must be a fraction in (0, 1), e.g. 1 / batch size, '
                      f'got {rate!r}.')
  if any(isinstance(cfg[f], bool) or not isinstance(cfg[f], (int, float))
         for f in ('target', 'target_width')):
    raise ConfigError('server.target and server.target_width must be numbers (target < 0: off).')
  if cfg['target'] >= 0 and (cfg['target'] > 1 or not cfg['target_width'] > 0
                             or cfg['bins'] != 2):
    raise ConfigError(f'server.target={cfg["target"]!r} (one-shot imprint) needs a brightness '
                      f'in [0, 1], server.target_width > 0 and server.bins=2; got '
                      f'target_width={cfg["target_width"]!r}, bins={cfg["bins"]!r}.')
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
  target = float(config['target'])
  if config['name'] == 'imprint' and target >= 0:  # one-shot: the target sets the bins
    around = (target - config['target_width'] / 2, target + config['target_width'] / 2)
    return imprint.build(model, variables, None, key, bins=int(config['bins']), target=around)
  images = public_images(config, data, seed=int(jax.random.randint(key, (), 0, 2**30)))
  if config['name'] == 'qbi':
    return qbi.build(model, variables, images, key, rate=float(config['trap_rate']))
  if config['name'] == 'trap_weights':
    return trap_weights.build(model, variables, images, key, scale=float(config['trap_scale']),
                              rate=float(config['trap_rate']))
  return imprint.build(model, variables, images, key, bins=int(config['bins']))


def describe(config: Mapping[str, Any]) -> str:
  """One phrase for the report: what the server does to the model it sends."""
  if config.get('name', 'honest') == 'honest':
    return 'sends the model unchanged (honest)'
  if config['name'] == 'trap_weights':
    return trap_weights.describe(config)
  if config['name'] == 'qbi':
    return qbi.describe(config)
  return imprint.describe(config)
