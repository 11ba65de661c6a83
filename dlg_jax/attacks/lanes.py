"""Lanes: every (victim, restart) pair of an optimisation attack, run together.

A lane is one restart of one victim (`optimize` runs the jitted loops over
them). This module is what every optimisation attack does around those loops:
one key per lane, the dummy variables each lane starts from, the optional
probe phase that keeps only the best restarts, the best restart per victim,
and the `AttackResult` built from it. The solvers (`solvers`) bind an
optimiser to it; the attacks bind a loss (`losses`) and their variables.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax.attacks import optimize
from dlg_jax.attacks import stored
from dlg_jax.errors import ConfigError
from dlg_jax.types import AttackResult, ClientUpdate, PyTree

INITS = ('randn', 'rand')
# The lane fields every solver shares, with their defaults; the solvers add
# `steps`, `chunk` and `block_victims`, whose defaults are theirs.
DEFAULTS = {
    'restarts': 1,  # random initialisations per victim; the lowest loss is kept
    # With keep K < restarts, all restarts run `probe_steps` iterations and
    # only the K lowest-loss ones go on (0: every restart runs to the end).
    'probe_steps': 0,
    'keep': 0,
}


def lane_keys(key: jax.Array, victim_ids: jax.Array, restarts: int) -> jax.Array:
  """(V, R) keys: lane (v, r) gets `fold_in(fold_in(key, victim_ids[v]), r)`.

  Global victim indices, not positions, so that a victim starts the same in
  any chunk, on any device.

  >>> lane_keys(jax.random.key(0), jnp.arange(3), 2).shape
  (3, 2)
  """
  per_victim = lambda v: jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(key, v), r))(
      jnp.arange(restarts))
  return jax.vmap(per_victim)(victim_ids)


def init_dummy(key: jax.Array, shape: tuple[int, ...], num_classes: int, init: str,
               label_mode: str) -> PyTree:
  """One lane's dummy batch: 'image' (N(0, 1) or U(0, 1)), and label logits to optimise.

  >>> z = init_dummy(jax.random.key(0), (2, 4, 4, 1), 3, 'rand', 'optimize')
  >>> z['image'].shape, z['label_logits'].shape
  ((2, 4, 4, 1), (2, 3))
  """
  k_img, k_lab = jax.random.split(key)
  if init == 'randn':
    image = jax.random.normal(k_img, shape)
  else:
    image = jax.random.uniform(k_img, shape)
  z = {'image': image}
  if label_mode == 'optimize':
    z['label_logits'] = jax.random.normal(k_lab, (shape[0], num_classes))
  return z


def public_aux(update: ClientUpdate, labels: jax.Array) -> dict[str, Any]:
  """Each victim's public data a lane's loss reads: target update, labels, global index."""
  return {'target': update.gradients, 'labels': labels, 'victim_ids': update.victim_ids}


def check_lanes(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming the first bad lane field (`DEFAULTS`, steps, chunk)."""
  optimize.check_positive(config, ('steps', 'restarts', 'chunk'))
  for field in ('block_victims', 'probe_steps'):
    value = config[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise ConfigError(f'attack.{field} must be an integer >= 0 (0: off), got {value!r}.')
  keep = config['keep']
  if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= int(config['restarts']):
    raise ConfigError(f'attack.keep must be an integer in [0, attack.restarts] (0: all), '
                      f'got {keep!r}.')


class Programs(NamedTuple):
  """The two compiled programs of an optimisation attack."""
  init: Callable  # (z0, aux, shared) -> (V, R) LaneState
  chunk: optimize.Step  # `optimize.make_chunk`'s chunk


def programs(init_lane: Callable, step: optimize.Step, chunk: int,
             block_victims: int, identity: str | None = None) -> Programs:
  """Jits one lane's `init_lane` over every lane, and the chunk of `step`s.

  With an `identity` (`stored.fingerprint` of everything the two close
  over), their traces are kept on disk between runs (`stored.stored`).
  """
  init = jax.jit(optimize.vmap_lanes(init_lane))
  chunk_fn = optimize.make_chunk(step, chunk, block_victims=block_victims)
  if identity is None:
    return Programs(init, chunk_fn)
  return Programs(stored.stored(init, f'init {identity}'),
                  stored.stored(chunk_fn, f'chunk {identity}', donate_argnums=(0,)))


def run_lanes(key: jax.Array, config: Mapping[str, Any], aux: PyTree,
              fixed_labels: jax.Array | None, *, shared: PyTree,
              init_z: Callable[[jax.Array], PyTree], compiled: Programs,
              progress=None) -> AttackResult:
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
    key: the attacker's key; lane (v, r) starts from `lane_keys`.
    config: a completed attack config: restarts, steps, chunk, block_victims
      (victims per vmapped block, `optimize.make_chunk`; 0: all at once),
      probe_steps, keep.
    aux: per-victim public data (leading victim axis); a dict may hold
      'victim_ids' (`ClientUpdate.victim_ids`: global indices, None or absent
      means arange(V)) so that a victim's lanes start the same in any chunk.
    fixed_labels: (V, B) labels the attack fixed, or None if `z` holds
      'label_logits' to read them from.
    shared: keyword arguments of the loss that every lane shares (the model's
      variables), passed to the compiled loops as arguments (`optimize`).
    init_z: key -> one lane's variables; must hold 'image'.
    compiled: the solver's `Programs` for this config's chunk and
      block_victims (`programs`), built once per solver setting and loss.
    progress: optional callback(iteration, state, snapshot) after each chunk.
  """
  check_lanes(config)
  num_victims = jax.tree.leaves(aux)[0].shape[0]
  restarts = int(config['restarts'])
  steps, chunk = int(config['steps']), int(config['chunk'])
  victim_ids = aux.get('victim_ids') if isinstance(aux, dict) else None
  ids = jnp.arange(num_victims) if victim_ids is None else jnp.asarray(victim_ids)
  z0 = jax.vmap(jax.vmap(init_z))(lane_keys(key, ids, restarts))
  state = compiled.init(z0, aux, shared)
  chunk_fn = compiled.chunk
  snapshot = lambda z: np.clip(np.asarray(z['image']), 0.0, 1.0)
  keep = int(config['keep']) or restarts
  probe = -(-int(config['probe_steps']) // chunk) * chunk  # whole chunks
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
  return best_result(out, fixed_labels)


def best_result(out: optimize.LoopResult, fixed_labels: jax.Array | None) -> AttackResult:
  """Each victim's kept restart as the attack's result."""
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
