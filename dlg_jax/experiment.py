"""The five hops of an experiment, in memory: config → data + model → client
update → attack → scores.

  config = experiment.check(config)           # every validator, before any data is read
  exp = experiment.setup(config)              # data, model, weights, ground truth, keys
  out = experiment.attack_victims(exp)        # client round, attack, matched scores

Nothing here writes files, shows progress bars or knows about hosts:
`runner.run` drives these functions at scale (chunks, resume, device rounds,
hosts, progress, report), and `dlg_jax.audit` builds an `Experiment` around a
researcher's own model.

Every per-victim key folds in the victim's global index, and with
`device_victims` > 0 every device runs the same fixed-size program, so a
victim's result is bitwise the same on 1, 2 or 4 devices and in any chunk.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import chunks as chunks_lib
from dlg_jax import data as data_lib
from dlg_jax import metrics
from dlg_jax import models
from dlg_jax import parallel
from dlg_jax import preprocess
from dlg_jax import server as server_lib
from dlg_jax import weights
from dlg_jax.attacks import registry
from dlg_jax.client import accounting
from dlg_jax.client import defenses as defenses_lib
from dlg_jax.client import protocol as protocol_lib
from dlg_jax.client import simulate
from dlg_jax.errors import ConfigError, check_positive_int
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, Private, PyTree, Scores

# progress(round index, the round's padded victim ids) -> a callback
# (iteration, lane state, snapshot) for that round's attack, or None.
RoundProgress = Callable[[int, np.ndarray], Callable | None]


class Experiment(NamedTuple):
  """Everything the attack hops need, built once per run."""
  model: Model  # the model the server sends (normalisation folded in)
  variables: PyTree  # its weights (the server knows them)
  truth: Private  # every victim's private batch, (V, B, ...) host arrays
  names: tuple  # one name (B = 1) or tuple of names per victim, for reports
  client: Mapping[str, Any]  # the `client` config
  attack: Mapping[str, Any]  # the `attack` config, defaults filled in
  k_client: jax.Array  # the clients' key (dropout masks, defense noise)
  k_attack: jax.Array  # the attacker's key


class Outcome(NamedTuple):
  """The attack on some victims, matched to and scored against their truth."""
  result: AttackResult  # reconstructions in the private images' order
  truth: Private
  scores: Scores
  seconds: float  # client round + attack


def _to_dict(config: Any) -> dict[str, Any]:
  return config.to_dict() if hasattr(config, 'to_dict') else dict(config)


def check_client(client: Mapping[str, Any]) -> None:
  """The client's protocol, defenses and accounting; no computation."""
  check_positive_int('client.batch_size', client['batch_size'])
  check_positive_int('client.users', client.get('users', 1))
  protocol_lib.from_config(client)
  defenses_lib.build(list(client.get('defenses', [])))
  accounting.experiment_privacy(client)


def check(config: Mapping[str, Any]) -> dict[str, Any]:
  """Every validator of a run, before any data is read or any model is built.

  Returns:
    The config as a plain dict, its `attack` section completed with the
    attack's defaults (`registry.complete`).

  Raises:
    ConfigError: naming the field and what it accepts.
  """
  cfg = _to_dict(config)
  cfg['attack'] = registry.complete(cfg['attack'])
  weights.check(cfg.get('model_init', {}))
  models.module_arguments(cfg['model'])
  data_lib.check_name(cfg['data']['name'])
  check_positive_int('data.num_victims', cfg['data']['num_victims'])
  check_client(cfg['client'])
  cfg['server'] = server_lib.check(cfg.get('server'), cfg['data'])
  users, name = cfg['client'].get('users', 1), cfg['attack']['name']
  if users > 1 and name not in AGGREGATE_ATTACKS:
    raise ConfigError(f'client.users={users}: the server sees the sum of {users} users\' '
                      f'updates, which attack.name={name!r} does not read; use one of '
                      f'{AGGREGATE_ATTACKS} or client.users=1.')
  if name in MALICIOUS_ATTACKS and cfg['server']['name'] not in MALICIOUS_ATTACKS[name]:
    raise ConfigError(f'attack.name={name!r} reads the block a malicious server planted; set '
                      f'server.name={" or ".join(map(repr, MALICIOUS_ATTACKS[name]))}.')
  if cfg['server']['name'] in server_lib.FIRST_LAYER and cfg['model']['name'] != 'mlp':
    raise ConfigError(f'server.name={cfg["server"]["name"]!r} traps the first dense layer on the '
                      f'flattened input; model.name={cfg["model"]["name"]!r} has none: use '
                      'model.name="mlp".')
  if cfg['attack'].get('labels') == 'known' and not cfg['client'].get('reveal_labels'):
    raise ConfigError('attack.labels="known" but the client keeps its labels private; set '
                      'client.reveal_labels=True or use attack.labels="idlg".')
  for field, zero in (('chunk_victims', 'one chunk'),
                      ('device_victims', 'each chunk split evenly over the devices')):
    value = cfg.get('run', {}).get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise ConfigError(f'run.{field} must be an integer >= 0 (0: {zero}), got {value!r}.')
  return cfg


# Attacks that read the sum of several users' updates (client.users > 1).
AGGREGATE_ATTACKS = ('imprint', 'trap_weights')
# Attacks that need a malicious server, and the servers whose planted layer they read.
MALICIOUS_ATTACKS = {'imprint': ('imprint',), 'trap_weights': server_lib.FIRST_LAYER}


def victim_names(dataset_names: tuple[str, ...], num_victims: int, batch: int) -> tuple:
  """One name per victim (B = 1), or the tuple of its images' names.

  >>> victim_names(('a', 'b', 'c', 'd'), 2, 2)
  (('a', 'b'), ('c', 'd'))
  """
  return tuple(tuple(dataset_names[v * batch:(v + 1) * batch]) if batch > 1 else dataset_names[v]
               for v in range(num_victims))


def setup(config: Mapping[str, Any]) -> Experiment:
  """Data, model, the weights the server sends, ground truth and keys.

  `config` is checked first (`check`), so a bad field fails before the data
  is read.
  """
  cfg = check(config)
  data_cfg, client_cfg = cfg['data'], cfg['client']
  # Images per victim: each of its `users` users holds a batch (client.users).
  num_victims = data_cfg['num_victims']
  batch = client_cfg['batch_size'] * client_cfg.get('users', 1)
  k_model, k_client, k_attack = jax.random.split(jax.random.key(cfg['seed']), 3)

  dataset = data_lib.load(data_cfg, num_victims * batch)
  num_classes = int(data_cfg.get('num_classes') or dataset.num_classes)
  if dataset.labels.max() >= num_classes:
    raise ConfigError(f'data.num_classes={num_classes} but a label is {dataset.labels.max()}.')
  shape = dataset.images.shape[1:]
  # The model takes [0, 1] pixels; normalisation is its first layer.
  model = models.build(cfg['model'], input_shape=shape, num_classes=num_classes)
  model = preprocess.normalized(model, preprocess.from_config(data_cfg, shape[-1]))
  variables = weights.initial(cfg.get('model_init', {}), model, k_model, dataset)
  # What a malicious server sends instead (its own key: the honest keys stay as they were).
  model, variables = server_lib.prepare(cfg['server'], data_cfg, model, variables,
                                        jax.random.fold_in(jax.random.key(cfg['seed']), 7))
  truth = Private(dataset.images.reshape(num_victims, batch, *shape),
                  dataset.labels.reshape(num_victims, batch))
  return Experiment(model=model, variables=variables, truth=truth,
                    names=victim_names(dataset.names, num_victims, batch), client=client_cfg,
                    attack=cfg['attack'], k_client=k_client, k_attack=k_attack)


_PER_VICTIM_FIELDS = ('images', 'labels', 'loss', 'iterations', 'evaluations', 'diverged')


def merge_rounds(results: list[AttackResult], keep: int) -> AttackResult:
  """One result from the rounds' (host arrays, victim order), padding dropped.

  A round whose lanes all stopped early has a shorter loss trace and fewer
  snapshots; its lanes were frozen from then on, so the trace goes on as NaN
  (what a stopped lane records) and its last snapshot carries forward, which
  is what one round holding all the victims would have recorded.
  """
  merged = {f: np.concatenate([np.asarray(getattr(r, f)) for r in results])[:keep]
            for f in _PER_VICTIM_FIELDS}
  length = max(r.loss_trace.shape[1] for r in results)
  merged['loss_trace'] = np.concatenate([
      np.pad(np.asarray(r.loss_trace, np.float32), ((0, 0), (0, length - r.loss_trace.shape[1])),
             constant_values=np.nan) for r in results])[:keep]
  its = sorted({it for r in results for it, _ in r.snapshots})
  columns = [chunks_lib.carry_forward([i for i, _ in r.snapshots], [s for _, s in r.snapshots], its)
             for r in results]
  snapshots = tuple((it, np.concatenate([np.asarray(c[k]) for c in columns])[:keep])
                    for k, it in enumerate(its))
  return AttackResult(**merged, snapshots=snapshots)


def attack_victims(exp: Experiment, ids: np.ndarray | None = None, *,
                   mesh: jax.sharding.Mesh | None = None, device_victims: int = 0,
                   progress: RoundProgress | None = None) -> Outcome:
  """Client round, attack and scores of the victims `ids` (global indices).

  The victims run in rounds of `device_victims` per device
  (`parallel.rounds`; 0: one round split evenly over the devices), each
  round sharded on the victim axis of `mesh` (default: every local device);
  padding is dropped from the results. The attack sees the client's update
  and the public model only; the scores compare with `exp.truth`.

  Returns:
    An `Outcome` of host arrays; for B > 1 the reconstructions are in the
    private images' order (optimal assignment), so each image meets its partner.
  """
  ids = np.arange(len(exp.truth.labels)) if ids is None else np.asarray(ids)
  mesh = parallel.victim_mesh() if mesh is None else mesh
  attack = registry.get(exp.attack['name'])
  results = []
  start = time.perf_counter()
  for r, padded in enumerate(parallel.rounds(ids, mesh, device_victims)):
    part_truth, victim_ids = parallel.shard_victims(
        (Private(exp.truth.images[padded], exp.truth.labels[padded]),
         jnp.asarray(padded, jnp.int32)), mesh)
    update, _, _ = simulate.client_update(exp.model, exp.variables, part_truth, exp.k_client,
                                          exp.client, victim_ids=victim_ids)
    callback = progress(r, padded) if progress is not None else None
    result = attack.run(update, exp.model, exp.variables, exp.k_attack, exp.attack,
                        progress=callback)
    jax.block_until_ready(result.images)
    results.append(result)
  seconds = time.perf_counter() - start
  truth = Private(exp.truth.images[ids], exp.truth.labels[ids])
  result = metrics.match(merge_rounds(results, keep=len(ids)), truth)
  return Outcome(result, truth, metrics.score(result, truth), seconds)
