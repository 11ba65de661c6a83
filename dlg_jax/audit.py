"""Audit your own model from Python: how much do its updates leak?

  import dlg_jax
  out = dlg_jax.audit(MyNet(num_classes=10), variables, images, labels,
                      attack='ig', client={'defenses': [{'name': 'prune', 'sparsity': 0.9}]})
  out.scores.psnr, out.record['summary']          # per victim, and metrics.json's record
  dlg_jax.write_report(out, 'runs/mine')          # the usual workdir files and report.html

Any Flax module that follows the zoo's convention works without registering
it: ``__call__(x, train)`` on NHWC images in [0, 1] returning logits, with
optional `dlg_jax.models.layers.MaskedDropout` sites (masks as data) and a
``dropout_rate`` field when it has them. The hops are `experiment`'s, the
same ones `launch.py` runs: the client's round under the protocol and the
defense chain, the attack (registry defaults filled in), matched scores.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple

import flax.linen as nn
import jax
import numpy as np

from dlg_jax import experiment
from dlg_jax import html_report
from dlg_jax import metrics
from dlg_jax import report
from dlg_jax import weights
from dlg_jax.attacks import registry
from dlg_jax.client import accounting
from dlg_jax.client import simulate
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, Private, PyTree, Scores


class Audit(NamedTuple):
  """What one audit found."""
  result: AttackResult  # reconstructions (V, B, H, W, C), matched to the private images
  truth: Private  # the private images and labels, grouped per victim
  scores: Scores  # per-victim MSE, PSNR, SSIM, label accuracy
  record: dict[str, Any]  # what metrics.json holds: summary + one record per victim
  config: dict[str, Any]  # the run described as a config (config.json, the report's words)


def wrap(module: nn.Module, input_shape: tuple[int, int, int], num_classes: int,
         name: str | None = None) -> Model:
  """A `Model` around any Flax module of the zoo's convention (no registration)."""
  return Model(name=name or type(module).__name__, module=module,
               input_shape=tuple(int(s) for s in input_shape), num_classes=int(num_classes))


def _attack_config(attack: str | Mapping[str, Any]) -> dict[str, Any]:
  given = {'name': attack} if isinstance(attack, str) else dict(attack)
  return registry.complete(given)


def _victims(images: np.ndarray, labels: np.ndarray, batch_size: int) -> Private:
  images, labels = np.asarray(images, np.float32), np.asarray(labels)
  if images.ndim != 4:
    raise ConfigError(f'images must be (N, H, W, C) in [0, 1], got shape {images.shape}.')
  if labels.shape != images.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
    raise ConfigError(f'labels must be N = {len(images)} integers, got {labels.dtype} '
                      f'{labels.shape}.')
  if len(images) % batch_size:
    raise ConfigError(f'{len(images)} images do not split into victims of client.batch_size='
                      f'{batch_size}.')
  v = len(images) // batch_size
  return Private(images.reshape(v, batch_size, *images.shape[1:]),
                 labels.astype(np.int32).reshape(v, batch_size))


def audit(model: Model | nn.Module, variables: PyTree | str, images: np.ndarray,
          labels: np.ndarray, *, attack: str | Mapping[str, Any] = 'ig',
          client: Mapping[str, Any] | None = None, num_classes: int | None = None,
          seed: int = 0, names: tuple[str, ...] | None = None,
          device_victims: int = 0) -> Audit:
  """Attacks the given images and labels through a model's updates and scores the result.

  Args:
    model: a `dlg_jax.models.Model`, or a Flax module (wrapped by `wrap`).
    variables: the weights the server sends ({'params': ..., maybe
      'batch_stats'}), or the path of a checkpoint written by
      `dlg_jax.weights.save`.
    images: (N, H, W, C) private images, pixels in [0, 1].
    labels: (N,) their integer labels.
    attack: an attack name (`dlg_jax.attacks.registry.ATTACKS`) or an attack
      config: {'name': 'dlg', 'steps': 500, ...}; missing fields take the
      attack's defaults.
    client: the client's round and defenses, fields as a config's `client`
      section (`client.simulate.DEFAULTS`): batch_size (images per victim),
      train, protocol, local_steps, local_lr, defenses, reveal_labels, ...
    num_classes: the model's output width; default the module's
      ``num_classes`` field, else max(labels) + 1.
    seed: the run's key (clients' and attacker's randomness).
    names: one name per image, for reports.
    device_victims: victims per device at once (0: all at once).

  Returns:
    An `Audit`: reconstructions, per-victim scores, and the metrics record.
  """
  client_cfg = {**simulate.DEFAULTS, **dict(client or {})}
  experiment.check_client(client_cfg)
  attack_cfg = _attack_config(attack)
  # A victim's images: each of its `users` users holds a batch (client.users).
  truth = _victims(images, labels, int(client_cfg['batch_size']) * int(client_cfg['users']))
  if not isinstance(model, Model):
    classes = num_classes or getattr(model, 'num_classes', None) or int(truth.labels.max()) + 1
    model = wrap(model, truth.images.shape[2:], classes)
  k_model, k_client, k_attack = jax.random.split(jax.random.key(seed), 3)
  if isinstance(variables, (str, os.PathLike)):
    variables = weights.load(os.fspath(variables), model.init(k_model))
  count = truth.labels.size
  names = tuple(names) if names is not None else tuple(f'image{i}' for i in range(count))
  exp = experiment.Experiment(
      model=model, variables=variables, truth=truth,
      names=experiment.victim_names(names, len(truth.labels), truth.labels.shape[1]),
      client=client_cfg, attack=attack_cfg, k_client=k_client, k_attack=k_attack)
  out = experiment.attack_victims(exp, device_victims=device_victims)
  summary = {**metrics.summary(out.scores, out.seconds),
             **accounting.experiment_privacy(client_cfg)}
  h, w, c = model.input_shape
  config = {'seed': seed,
            'data': {'name': 'arrays', 'num_victims': len(truth.labels), 'size': h,
                     'width': w, 'channels': c},
            'model': {'name': model.name, 'options': ''},
            'model_init': {'source': 'given'},
            'client': client_cfg, 'attack': attack_cfg}
  return Audit(out.result, out.truth, out.scores,
               report.record(out.result, out.truth, out.scores, summary, exp.names), config)


def write_report(found: Audit, workdir: str) -> dict[str, Any]:
  """Writes an audit's workdir files (metrics.json, grid, curves, report.html, ...)."""
  summary = found.record['summary']
  record = report.write(workdir, found.config, found.result, found.truth, found.scores,
                        summary, tuple(v['images'] for v in found.record['victims']))
  html_report.write(workdir, found.config, record)
  return record
