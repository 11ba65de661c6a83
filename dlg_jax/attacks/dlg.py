"""Gradient matching with L-BFGS: DLG, and iDLG as its analytic-label variant.

DLG (Zhu et al. 2019) optimises a dummy image *and* dummy label logits so that
the gradient they produce matches the shared one in squared L2 distance, with
L-BFGS. iDLG (Zhao et al. 2020) first reads the label off the output layer's
gradient and then optimises the image alone, which converges more reliably.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.attacks import labels as labels_lib
from dlg_jax.attacks import objectives
from dlg_jax.attacks import optimize
from dlg_jax.client import protocol as protocol_lib
from dlg_jax.models import Model
from dlg_jax.types import AttackResult, ClientUpdate, Protocol, PyTree

LABEL_MODES = ('optimize', 'idlg', 'known')
INITS = ('randn', 'rand')
# Folded into the attacker's key for the dummy inputs of batch label recovery;
# victim indices (folded in for the lanes) stay far below it.
LABEL_STREAM = 0x7FFFFFFF
# Defaults of the L-BFGS attacks when the config does not set them
# (BUILD_NOTES.md, "Throughput"): the compact-form direction, victims run in
# vmapped blocks of 8.
LBFGS_FORM = 'compact'
BLOCK_VICTIMS = 8


def _lane_loss(z: PyTree, aux: PyTree, *, model: Model, variables: PyTree, train: bool,
               distance: str, label_mode: str,
               protocol: Protocol = protocol_lib.FEDSGD) -> jax.Array:
  if label_mode == 'optimize':
    targets = jax.nn.softmax(z['label_logits'])
  else:
    targets = jax.nn.one_hot(aux['labels'], model.num_classes)
  dummy = protocol_lib.observe(model, variables, z['image'], targets, protocol=protocol,
                               train=train)
  return objectives.DISTANCES[distance](dummy, aux['target'])


def recover_labels(update: ClientUpdate, label_mode: str, *, model: Model | None = None,
                   variables: PyTree | None = None, key: jax.Array | None = None,
                   train: bool = True) -> jax.Array | None:
  """(V, B) labels the attack fixes before optimising, or None to optimise them.

  'idlg' reads them off the output layer's shared gradient: iDLG's rule for
  B = 1, `labels.batch_labels` (Yin et al. 2021 + Geng et al. 2021) for
  B > 1, which needs `model`, `variables` and `key` for its dummy-input
  estimate of the model's class probabilities (BatchNorm mode `train`).
  Under FedAvg the update is the mean of the K local gradients; with
  non-negative features every local step's absent-class rows stay ≥ 0 and
  the present row of a single example < 0, so iDLG's rule and Yin et al.'s
  rule hold for any K and η; the count estimate uses p̂ at the sent weights,
  an approximation once the local steps move the probabilities.
  """
  if label_mode == 'optimize':
    return None
  if label_mode == 'known':
    if update.known_labels is None:
      raise ValueError('attack.labels="known" but the client update reveals no labels; '
                       'set client.reveal_labels=True or use attack.labels="idlg".')
    return update.known_labels
  signed = bool(getattr(model, 'signed_features', False))
  if update.batch_size == 1:
    read = jax.vmap(lambda g: labels_lib.idlg_label(g, update.num_classes,
                                                    signed_features=signed))
    return read(update.gradients)[:, None]
  if model is None or variables is None or key is None:
    raise ValueError(f'batch label recovery (attack.labels="idlg", batch size '
                     f'{update.batch_size}) needs the model, its variables and a key.')
  probs = labels_lib.mean_probabilities(model, variables, key, train=train)
  read = jax.vmap(lambda g: labels_lib.batch_labels(g, update.num_classes, update.batch_size,
                                                    probs, signed_features=signed))
  return read(update.gradients)


def init_dummy(key: jax.Array, shape: tuple[int, ...], num_classes: int, init: str,
            label_mode: str) -> PyTree:
  k_img, k_lab = jax.random.split(key)
  if init == 'randn':
    image = jax.random.normal(k_img, shape)
  else:
    image = jax.random.uniform(k_img, shape)
  z = {'image': image}
  if label_mode == 'optimize':
    z['label_logits'] = jax.random.normal(k_lab, (shape[0], num_classes))
  return z


def check_config(config: Mapping[str, Any]) -> None:
  """Raises ValueError naming the field and its choices for a bad value."""
  if config['labels'] not in LABEL_MODES:
    raise ValueError(f'attack.labels must be one of {LABEL_MODES}, got {config["labels"]!r}.')
  if config['init'] not in INITS:
    raise ValueError(f'attack.init must be one of {INITS}, got {config["init"]!r}.')
  if config['distance'] not in objectives.DISTANCES:
    raise ValueError(f'attack.distance must be one of {sorted(objectives.DISTANCES)}, '
                     f'got {config["distance"]!r}.')
  if config.get('linesearch', 'backtracking') not in optimize.LINESEARCHES:
    raise ValueError(f'attack.linesearch must be one of {optimize.LINESEARCHES}, '
                     f'got {config["linesearch"]!r}.')
  optimize.check_positive(config, ('steps', 'restarts', 'chunk', 'memory', 'linesearch_steps'))
  if config.get('lbfgs_form', LBFGS_FORM) not in optimize.LBFGS_FORMS:
    raise ValueError(f'attack.lbfgs_form must be one of {optimize.LBFGS_FORMS}, '
                     f'got {config["lbfgs_form"]!r}.')
  check_lanes(config)


def check_lanes(config: Mapping[str, Any]) -> None:
  """Validates the optional lane-scheduling fields read by `run_lanes`."""
  for field in ('block_victims', 'probe_steps'):
    value = config.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise ValueError(f'attack.{field} must be an integer >= 0 (0: off), got {value!r}.')
  keep = config.get('keep', 0)
  if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= int(config['restarts']):
    raise ValueError(f'attack.keep must be an integer in [0, attack.restarts] (0: all), '
                     f'got {keep!r}.')


def attack(update: ClientUpdate, model: Model, variables: PyTree, key: jax.Array,
           config: Mapping[str, Any], progress=None) -> AttackResult:
  """Reconstructs every victim's batch from its shared gradient.

  Args:
    update: what the server received; gradients carry a leading victim axis.
    model, variables: the global model the server sent (the attacker knows it).
    key: the attacker's randomness (dummy initialisation of each restart).
    config: `attack` config: labels, init, distance, steps, restarts, chunk,
      memory, linesearch, linesearch_steps, tol, train (BatchNorm mode the attacker
      assumes); optional lbfgs_form (default 'compact', see `optimize.lbfgs`),
      block_victims (default 8), probe_steps and keep (see `run_lanes`).
    progress: optional callback(iteration, state, snapshot) after each chunk
      (`optimize.run`).
  """
  check_config(config)
  label_mode = config['labels']
  fixed_labels = recover_labels(update, label_mode, model=model, variables=variables,
                                key=jax.random.fold_in(key, LABEL_STREAM),
                                train=bool(config['train']))
  num_victims = jax.tree.leaves(update.gradients)[0].shape[0]
  batch_shape = (update.batch_size, *update.input_shape)

  opt = optimize.lbfgs(int(config['memory']), int(config['linesearch_steps']),
                       config.get('linesearch', 'backtracking'),
                       form=config.get('lbfgs_form', LBFGS_FORM))
  loss_fn = functools.partial(_lane_loss, model=model,
                              train=bool(config['train']), distance=config['distance'],
                              label_mode=label_mode, protocol=update.protocol)
  aux = {'target': update.gradients,
         'labels': fixed_labels if fixed_labels is not None else jnp.zeros((num_victims, 0), jnp.int32),
         'victim_ids': update.victim_ids}

  init_z = functools.partial(init_dummy, shape=batch_shape, num_classes=update.num_classes,
                             init=config['init'], label_mode=label_mode)
  step = functools.partial(optimize.lbfgs_step, opt, loss_fn, float(config['tol']))
  return run_lanes(key, config, aux, fixed_labels, shared={'variables': variables},
                   init_z=init_z, init_lane=functools.partial(optimize.init_lane, opt, loss_fn),
                   step=step, progress=progress,
                   block_victims=BLOCK_VICTIMS)


def run_lanes(key: jax.Array, config: Mapping[str, Any], aux: PyTree,
              fixed_labels: jax.Array | None, *, shared: PyTree, init_z, init_lane, step,
              progress=None, block_victims: int = 0) -> AttackResult:
  """Shared driver of optimisation attacks: init, jitted chunks, best restart.

  With `config.probe_steps` P > 0 and `config.keep` K < R, all R restarts of
  a victim run for P iterations (rounded up to whole chunks), then only the
  K with the lowest matching loss go on for the remaining iterations: a bad
  initialisation shows in its loss early (DLG's dummy label locks onto a
  wrong class within the first hundred iterations, its loss stays ~10⁷×
  that of a converging restart), and its lanes are better spent on the
  survivors (BUILD_NOTES.md, "Acceptance runs"). The attacker sees the loss,
  never the truth. Without them (the default) all R restarts run to the end.

  Args:
    key: the attacker's key; lane (v, r) starts from
      `fold_in(fold_in(key, aux['victim_ids'][v]), r)`.
    config: needs restarts, steps, chunk; optional probe_steps, keep.
    aux: per-victim public data (leading victim axis); a dict may hold
      'victim_ids' (`ClientUpdate.victim_ids`: global indices, None or absent
      means arange(V)) so that a victim's lanes start the same in any chunk.
    fixed_labels: (V, B) labels the attack fixed, or None if `z` holds
      'label_logits' to read them from.
    shared: keyword arguments of the loss that every lane shares (the model's
      variables), passed to the compiled loops as arguments (`optimize`).
    init_z: key -> one lane's variables; must hold 'image'.
    init_lane: (z, aux, shared) -> `optimize.LaneState` of one lane.
    step: (state, aux, shared) -> (state, loss) for one lane.
    block_victims: the default of `config.block_victims`, victims per vmapped
      block (`optimize.make_chunk`; 0: all victims vmapped at once).
  """
  check_lanes(config)
  num_victims = jax.tree.leaves(aux)[0].shape[0]
  restarts = int(config['restarts'])
  steps, chunk = int(config['steps']), int(config['chunk'])
  victim_ids = aux.get('victim_ids') if isinstance(aux, dict) else None
  ids = jnp.arange(num_victims) if victim_ids is None else jnp.asarray(victim_ids)
  keys = jax.vmap(lambda v: jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(key, v), r))(
      jnp.arange(restarts)))(ids)
  z0 = jax.vmap(jax.vmap(init_z))(keys)
  state = jax.jit(optimize.vmap_lanes(init_lane))(z0, aux, shared)
  chunk_fn = optimize.make_chunk(step, chunk,
                                 block_victims=int(config.get('block_victims', block_victims)))
  snapshot = lambda z: np.clip(np.asarray(z['image']), 0.0, 1.0)
  keep = int(config.get('keep', 0)) or restarts
  probe = -(-int(config.get('probe_steps', 0)) // chunk) * chunk  # whole chunks
  if keep < restarts and 0 < probe < steps:
    first = optimize.run(chunk_fn, state, aux, shared, steps=probe, chunk_size=chunk,
                         snapshot=snapshot, progress=progress)
    chosen = optimize.lowest_restarts(first.state, keep)  # (V, K) restart indices
    later = None if progress is None else (lambda it, st, snap: progress(probe + it, st, snap))
    out = optimize.run(chunk_fn, optimize.take_restarts(first.state, chosen), aux, shared,
                       steps=steps - probe, chunk_size=chunk, snapshot=snapshot,
                       progress=later)
    origin = np.asarray(optimize.take_restart(chosen, out.best))  # (V,) restart of the kept lane
    trace = np.concatenate(
        [first.traces[np.arange(num_victims), origin],
         np.full((num_victims, probe - first.traces.shape[-1]), np.nan), out.trace], axis=-1)
    snapshots = first.snapshots + tuple((probe + it, s) for it, s in out.snapshots[1:])
    out = out._replace(trace=trace[:, :steps], snapshots=snapshots)
  else:
    out = optimize.run(chunk_fn, state, aux, shared, steps=steps, chunk_size=chunk,
                       snapshot=snapshot, progress=progress)

  best = out.best
  final_z, final_loss = optimize.kept(out.state)
  z = optimize.take_restart(final_z, best)
  if fixed_labels is None:
    rec_labels = jnp.argmax(z['label_logits'], axis=-1).astype(jnp.int32)
  else:
    rec_labels = fixed_labels.astype(jnp.int32)
  pick = lambda x: optimize.take_restart(x, best)
  return AttackResult(
      images=jnp.clip(z['image'], 0.0, 1.0),
      labels=rec_labels,
      loss=pick(final_loss),
      iterations=pick(out.state.iterations),
      evaluations=pick(out.state.evaluations),
      diverged=jnp.all(out.state.diverged, axis=1),
      loss_trace=out.trace,
      snapshots=out.snapshots,
  )
