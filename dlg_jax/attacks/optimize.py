"""The jitted optimisation loops every optimisation-based attack runs on.

A *lane* is one restart of one victim: its variables `z` (dummy image, maybe
label logits or dropout masks) and a scalar objective `loss_fn(z, aux, **shared)`
where `aux` is that victim's public data (the shared gradient, known labels)
and `shared` what every lane has in common (the model's variables). The
loops here vmap a single-lane step over restarts and victims, scan it for a
chunk of iterations inside one `jax.jit`, and run chunks from the host so that
progress can be shown and a run can stop once every lane has stopped.

Why `shared` is an argument and not a closure: a jitted function that closes
over the model's weights gets them as constants, which XLA folds into the
program (minutes of compile time for a ResNet) and which make every new set
of weights (another seed, a trained checkpoint, a test) a new program. As
arguments they are broadcast to every lane and the compiled program is the
same for any weights of the same shapes.

A lane stops when its loss reaches `tol` or `rel_tol` × the shared
gradient's squared norm (converged), turns non-finite (diverged), or, with a
stall rule (`patience` > 0), has not fallen below
(1 − `rtol`) × its last reference loss for `patience` accepted steps; a
stopped lane keeps its last finite variables while the others go on. Every
rule reads the matching loss only, which the attacker sees. After the run
the lowest-loss restart of each victim is kept: the attacker can see that
loss, never the ground truth.

One *iteration* of L-BFGS here is one `optax.lbfgs` update: a direction from
the curvature history plus a line search (backtracking by default) that
evaluates loss and gradient once or more. PyTorch's `LBFGS.step()` as used by
DLG's code runs up to 20 such iterations without a line search, so 300 torch
steps are several thousand evaluations; see BUILD_NOTES.md.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlg_jax.errors import ConfigError
from dlg_jax.types import PyTree

LossFn = Callable[..., jax.Array]  # (z, aux, **shared) -> scalar


class LaneState(NamedTuple):
  """State of every lane; leaves carry leading (victim, restart) axes."""
  z: PyTree
  opt_state: PyTree
  loss: jax.Array  # objective at z
  grad: PyTree  # its gradient (L-BFGS reuses the line search's)
  iterations: jax.Array  # int32, accepted iterations
  evaluations: jax.Array  # int32, loss-and-gradient evaluations
  done: jax.Array  # bool
  diverged: jax.Array  # bool
  # Best-so-far tracking, for optimisers whose loss is not monotone (Adam);
  # None for L-BFGS, whose line search only accepts decreases.
  best_z: PyTree = None  # variables at the lowest loss seen
  best_loss: jax.Array | None = None
  # The stall rule's counter (None: no rule): accepted steps since the loss
  # last fell below (1 - rtol) × ref_loss, the loss of that last fall.
  stale: jax.Array | None = None  # int32
  ref_loss: jax.Array | None = None
  # The relative tolerance's threshold (None: no such rule): rel_tol × the
  # squared norm of the shared gradient, which is the L2 matching loss of a
  # dummy whose gradient is zero; so the rule is the same for any gradient scale.
  stop_below: jax.Array | None = None


def check_positive(config, fields: tuple[str, ...]) -> None:
  """Raises ConfigError naming the first `attack.<field>` that is not >= 1."""
  for field in fields:
    if int(config[field]) < 1:
      raise ConfigError(f'attack.{field} must be a positive integer, got {config[field]}.')


def check_choice(config, field: str, choices: tuple[str, ...]) -> None:
  """Raises ConfigError naming `attack.<field>` and its choices for a value not among them.

  >>> check_choice({'linesearch': 'zom'}, 'linesearch', LINESEARCHES)
  Traceback (most recent call last):
  dlg_jax.errors.ConfigError: attack.linesearch must be one of ('backtracking', 'zoom'), got 'zom'.
  """
  if config[field] not in choices:
    raise ConfigError(f'attack.{field} must be one of {choices}, got {config[field]!r}.')


def _all_finite(tree: PyTree) -> jax.Array:
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _select(pred: jax.Array, new: PyTree, old: PyTree) -> PyTree:
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


LINESEARCHES = ('backtracking', 'zoom')
LBFGS_FORMS = ('compact', 'two_loop')


class CompactLBFGSState(NamedTuple):
  """State of `scale_by_compact_lbfgs`; leaves of the memories carry a leading (m,) axis."""
  count: jax.Array  # int32, updates so far
  params: PyTree  # parameters at the previous update
  updates: PyTree  # gradient at the previous update
  diff_params_memory: PyTree  # s_i = w_{i+1} - w_i, ring buffer like optax's
  diff_updates_memory: PyTree  # y_i = g_{i+1} - g_i
  weights_memory: jax.Array  # (m,) 1 / (s_i . y_i); 0 marks an empty or skipped pair
  sy: jax.Array  # (m, m) s_i . y_j, kept for pairs with j no older than i
  yy: jax.Array  # (m, m) y_i . y_j


def _leaf_products(memory: PyTree, vectors: PyTree) -> jax.Array:
  """(m, k): memory rows dotted with k vectors, summed over the pytree's leaves."""
  return sum(jnp.einsum('mn,nk->mk', mem.reshape(mem.shape[0], -1), vec.reshape(-1, vec.shape[-1]))
             for mem, vec in zip(jax.tree.leaves(memory), jax.tree.leaves(vectors)))


def scale_by_compact_lbfgs(memory_size: int) -> optax.GradientTransformation:
  """optax's `scale_by_lbfgs` direction, computed in compact form.

  Same memory, same pairs (skipped when s.y = 0, as optax does), same initial
  scaling (γ = s.y / y.y, and min(1, 1/|g|) on the first step), so the same
  direction H g up to float rounding; what differs is how it is computed.
  optax's two-loop recursion makes 2m sequential passes over one pair at a
  time (under vmap: a gather, a dot and an axpy per pair, 200 small kernels
  at m = 100). The compact form of the inverse BFGS matrix (Byrd, Nocedal &
  Schnabel 1994, with H0 = γI)

    H g = γ g + S w − γ Y u,   R u = Sᵀg,   Rᵀ w = (D + γ YᵀY) u − γ Yᵀg,

  with R the upper triangle of SᵀY (pairs ordered oldest first) and D its
  diagonal, reads the history twice as two matrix products (Sᵀ[g, y] and
  Yᵀ[g, y] in one pass, S w − γ Y u in the other) and solves two m×m
  triangular systems. SᵀY and YᵀY are updated by one column per step from
  the first pass.

  References:
    Byrd, Nocedal, Schnabel, "Representations of quasi-Newton matrices and
    their use in limited memory methods", Math. Programming 63, 1994.
  """
  m = memory_size
  if m < 1:
    raise ValueError('memory_size must be >= 1')

  def init_fn(params):
    zeros = jax.tree.map(lambda x: jnp.zeros((m, *x.shape), x.dtype), params)
    return CompactLBFGSState(
        count=jnp.asarray(0, jnp.int32), params=optax.tree.zeros_like(params),
        updates=optax.tree.zeros_like(params), diff_params_memory=zeros,
        diff_updates_memory=zeros, weights_memory=jnp.zeros(m),
        sy=jnp.zeros((m, m)), yy=jnp.zeros((m, m)))

  def update_fn(updates, state, params):
    first = state.count == 0
    slot = (state.count - 1) % m  # where the newest pair goes (optax's prev_memory_idx)
    s = optax.tree.sub(params, state.params)
    y = optax.tree.sub(updates, state.updates)
    s_dot_y = optax.tree.vdot(y, s)
    weight = jnp.where(s_dot_y == 0.0, 0.0, 1.0 / s_dot_y)
    s, y, weight = jax.tree.map(lambda x: jnp.where(first, jnp.zeros_like(x), x), (s, y, weight))
    mem_s, mem_y, weights = jax.tree.map(
        lambda buf, new: buf.at[slot].set(new),
        (state.diff_params_memory, state.diff_updates_memory, state.weights_memory),
        (s, y, weight))
    # Pass 1 over the history: S and Y against [g, y_new].
    gy = jax.tree.map(lambda a, b: jnp.stack([a, b], axis=-1), updates, y)
    s_gy, y_gy = _leaf_products(mem_s, gy), _leaf_products(mem_y, gy)
    sy = state.sy.at[:, slot].set(s_gy[:, 1])  # s_i . y_new
    yy = state.yy.at[:, slot].set(y_gy[:, 1]).at[slot, :].set(y_gy[:, 1])
    y_norm2 = optax.tree.norm(y, squared=True)
    gamma = jnp.where(y_norm2 > 0.0, optax.tree.vdot(y, s) / y_norm2, 1.0)
    # Oldest pair first; empty and skipped pairs (weight 0) drop out exactly:
    # their rows and columns become those of the identity.
    order = (state.count % m + jnp.arange(m)) % m
    valid = weights[order] != 0.0
    # optax's first-step scaling, also whenever no pair is valid yet: after a
    # lazy start's zero step (s = 0) optax's γ = s.y / y.y would be 0.
    gamma = jnp.where(first | ~jnp.any(valid),
                      jnp.minimum(1.0, 1.0 / optax.tree.norm(updates)), gamma)
    both = valid[:, None] & valid[None, :]
    r = jnp.where(both, jnp.triu(sy[order][:, order]), 0.0) + jnp.diag(jnp.where(valid, 0.0, 1.0))
    d = jnp.where(valid, jnp.diagonal(sy)[order], 0.0)
    yy_o = jnp.where(both, yy[order][:, order], 0.0)
    s_g = jnp.where(valid, s_gy[order, 0], 0.0)
    y_g = jnp.where(valid, y_gy[order, 0], 0.0)
    u = jax.scipy.linalg.solve_triangular(r, s_g, lower=False)
    w = jax.scipy.linalg.solve_triangular(r, d * u + gamma * (yy_o @ u) - gamma * y_g,
                                          lower=False, trans='T')
    # Pass 2: γ g + S w − γ Y u, coefficients back in ring-buffer order.
    w_slots = jnp.zeros(m).at[order].set(w)
    u_slots = jnp.zeros(m).at[order].set(u)
    direction = jax.tree.map(
        lambda g, ms, my: gamma * g + jnp.tensordot(w_slots, ms, 1)
        - gamma * jnp.tensordot(u_slots, my, 1), updates, mem_s, mem_y)
    return direction, CompactLBFGSState(
        count=optax.safe_increment(state.count), params=params, updates=updates,
        diff_params_memory=mem_s, diff_updates_memory=mem_y, weights_memory=weights,
        sy=sy, yy=yy)

  return optax.GradientTransformation(init_fn, update_fn)


def lbfgs(memory_size: int, max_linesearch_steps: int,
          linesearch: str = 'backtracking', *, form: str
          ) -> optax.GradientTransformationExtraArgs:
  """optax's L-BFGS with a line search.

  Why a line search: without one (torch's DLG setting, lr 1) optax's L-BFGS
  diverged where torch's converged (it keeps negative-curvature pairs and
  scales the first step differently). Why backtracking (Armijo) by default:
  under vmap the zoom search's branches all run for every lane, which made
  an iteration ≈3 evaluations' worth of time; see BUILD_NOTES.md.

  `form` 'two_loop' is `optax.lbfgs` itself; 'compact' swaps its direction
  for `scale_by_compact_lbfgs` (the same direction, computed in two passes
  over the history) and keeps optax's scaling and line search. No default:
  the attacks' one is `solvers.LBFGS_DEFAULTS` (a default here let DIA's
  L-BFGS drift to the other form).
  """
  if linesearch == 'zoom':
    search = optax.scale_by_zoom_linesearch(
        max_linesearch_steps=max_linesearch_steps, initial_guess_strategy='one')
  elif linesearch == 'backtracking':
    search = optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=max_linesearch_steps, store_grad=True,
        decrease_factor=0.5, increase_factor=2.0, max_learning_rate=1.0)
  else:
    raise ConfigError(f'attack.linesearch must be one of {LINESEARCHES}, got {linesearch!r}.')
  if form == 'two_loop':
    return optax.lbfgs(memory_size=memory_size, linesearch=search)
  if form == 'compact':
    return optax.chain(scale_by_compact_lbfgs(memory_size), optax.scale(-1.0), search)
  raise ConfigError(f'attack.lbfgs_form must be one of {LBFGS_FORMS}, got {form!r}.')


def _finish(state: LaneState, z, opt_state, loss, grad, evals, tol,
            patience: int = 0, rtol: float = 0.0) -> tuple[LaneState, jax.Array]:
  """Accepts a proposed step unless the lane is done or the step is non-finite.

  With the stall counter kept, a lane also stops after `patience` (> 0)
  accepted steps in which its loss never fell below (1 − `rtol`) times the
  loss of the last such fall (`rtol` 0: any new lowest loss).
  """
  active = ~state.done
  finite = jnp.isfinite(loss) & _all_finite(z)
  accept = active & finite
  done = state.done | (active & ~finite) | (accept & (loss <= tol))
  extra = {}
  if state.stop_below is not None:
    done = done | (accept & (loss <= state.stop_below))
    extra.update(stop_below=state.stop_below)
  if state.stale is not None:
    fell = accept & (loss < state.ref_loss * (1.0 - rtol))
    stale = jnp.where(fell, 0, state.stale + accept.astype(jnp.int32))
    extra.update(stale=stale, ref_loss=jnp.where(fell, loss, state.ref_loss))
    if patience > 0:
      done = done | (stale >= patience)
  if state.best_z is not None:
    improved = accept & (loss < state.best_loss)
    extra.update(best_z=_select(improved, z, state.best_z),
                 best_loss=jnp.where(improved, loss, state.best_loss))
  new = LaneState(
      z=_select(accept, z, state.z),
      # No select: a lane that does not accept is done for good (stopped or
      # non-finite), and nothing reads a done lane's optimiser state again.
      # Selecting would copy the whole L-BFGS history (lanes × memory ×
      # variables) every iteration: measured 23 → 17 ms per iteration per
      # victim at 16 victims on the loaded 2-core machine (same trajectories).
      opt_state=opt_state,
      loss=jnp.where(accept, loss, state.loss),
      grad=_select(accept, grad, state.grad),
      # A lazy start's first step (no evaluation yet) only evaluates z.
      iterations=state.iterations + (accept & (state.evaluations > 0)).astype(jnp.int32),
      evaluations=state.evaluations + jnp.where(active, evals, 0).astype(jnp.int32),
      done=done,
      diverged=state.diverged | (active & ~finite),
      **extra,
  )
  return new, jnp.where(accept, loss, jnp.nan)


def kept(state: LaneState) -> tuple[PyTree, jax.Array]:
  """The (variables, loss) a lane reports: its best so far if tracked, else current."""
  if state.best_z is None:
    return state.z, state.loss
  return state.best_z, state.best_loss


def init_lane(opt: optax.GradientTransformation, loss_fn: LossFn, z: PyTree,
              aux: PyTree, shared: PyTree, track_best: bool = False,
              track_stall: bool = False, rel_tol: float = 0.0,
              evaluate: bool = True) -> LaneState:
  """Initial state of one lane, for any optimiser here; evaluates the loss if `evaluate`.

  `track_best` keeps the lowest-loss variables seen (first-order optimisers,
  whose loss oscillates); the run then reports those. `track_stall` (implied
  by `track_best`) keeps the stall rule's counter. `rel_tol` > 0 stops the
  lane once its loss is at most `rel_tol` × |aux['target']|².

  `evaluate=False` (L-BFGS in compact form) leaves the start point's loss
  (+inf) and gradient (zero) to the chunk: its first step has a zero
  direction, which the line search accepts at once, evaluating the start
  point in the chunk's own loss-and-gradient call. The init program then
  holds no copy of the double backward, which XLA would compile a second
  time (DenseNet-121 224: 63.6 s of init; BUILD_NOTES.md, "Compile time").
  `make_chunk` and `_finish` do not count that step as an iteration.
  """
  if evaluate:
    loss, grad = jax.value_and_grad(loss_fn)(z, aux, **shared)
  else:
    loss = jnp.array(jnp.inf, jnp.result_type(*jax.tree.leaves(z)))
    grad = optax.tree.zeros_like(z)
  # Strong dtypes: optax initialises some fields as weak-typed scalars, and the
  # chunk would otherwise be traced and compiled twice (weak in, strong out).
  opt_state = jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), opt.init(z))
  bad = ~jnp.isfinite(loss)
  start = jnp.where(bad, jnp.inf, loss)
  extra = {}
  if track_best or track_stall:
    extra.update(stale=jnp.int32(0), ref_loss=start)
  if track_best:
    extra.update(best_z=z, best_loss=start)
  if rel_tol > 0:
    extra.update(stop_below=rel_tol * optax.tree.norm(aux['target'], squared=True))
  if not evaluate:
    bad = jnp.bool_(False)
  return LaneState(z, opt_state, loss, grad, jnp.int32(0), jnp.int32(int(evaluate)), bad, bad,
                   **extra)


def lbfgs_step(opt: optax.GradientTransformationExtraArgs, loss_fn: LossFn, tol: float,
               state: LaneState, aux: PyTree, shared: PyTree, patience: int = 0,
               rtol: float = 0.0) -> tuple[LaneState, jax.Array]:
  """One L-BFGS iteration of one lane; returns the new loss (NaN if stopped).

  `patience` > 0 stops a lane whose loss fell by less than a factor
  (1 − `rtol`) in that many iterations (needs `init_lane(track_stall=True)`).
  """
  value_fn = lambda z: loss_fn(z, aux, **shared)
  updates, opt_state = opt.update(state.grad, state.opt_state, state.z, value=state.loss,
                                  grad=state.grad, value_fn=value_fn)
  z = optax.apply_updates(state.z, updates)
  # The line search already evaluated loss and gradient at the new point.
  loss = optax.tree.get(opt_state, 'value')
  grad = optax.tree.get(opt_state, 'grad')
  evals = optax.tree.get(opt_state, 'num_linesearch_steps')
  return _finish(state, z, opt_state, loss, grad, evals, tol, patience, rtol)


def first_order_step(opt: optax.GradientTransformationExtraArgs, loss_fn: LossFn, tol: float,
                     project: Callable[[PyTree], PyTree], transform_grad: Callable[[PyTree], PyTree],
                     state: LaneState, aux: PyTree, shared: PyTree,
                     patience: int = 0, rtol: float = 0.0) -> tuple[LaneState, jax.Array]:
  """One step of a first-order optimiser (e.g. Adam on signed gradients).

  `transform_grad` maps the raw gradient before the optimiser (Geiping et al.
  take the sign of the image gradient); `project` maps the variables back to
  their domain after the step (pixels boxed to the data range). The current
  loss reaches the optimiser as `value`, for plateau schedules
  (`optax.contrib.reduce_on_plateau`); `patience` > 0 stops a lane that has
  not improved (by a factor 1 − `rtol`) for that many steps (needs
  `init_lane(track_best=True)`).
  """
  updates, opt_state = opt.update(transform_grad(state.grad), state.opt_state, state.z,
                                  value=state.loss)
  z = project(optax.apply_updates(state.z, updates))
  loss, grad = jax.value_and_grad(loss_fn)(z, aux, **shared)
  return _finish(state, z, opt_state, loss, grad, jnp.int32(1), tol, patience, rtol)


def flat_lanes(lanes: PyTree, aux: PyTree) -> tuple[PyTree, PyTree, Callable[[PyTree], PyTree]]:
  """(V, R, ...) lanes as (V·R, ...), `aux` repeated over restarts, and the inverse map.

  Why one lane axis and not nested vmaps over victims and restarts: JAX
  batches a `while_loop` body (the line search's, holding the whole double
  backward) once per vmap level, so two levels made tracing the larger part
  of a warm-cache start (ResNet-18 DLG: trace 4.6 → 3.2 s; BUILD_NOTES.md,
  "Throughput", "One vmap over the lanes"). The price: `aux` is held once per
  restart rather than once per victim, V·R shared gradients among the chunk's
  temporaries (ResNet-18 CIFAR, 4 victims × 8 restarts: 1,364 of 5,076 MB;
  benchmarks/lane_memory.py). Indexing the victim's entry inside the map
  instead did not help: XLA materialised the gather just the same (1,385 MB).

  >>> z, aux, unflat = flat_lanes(jnp.zeros((2, 3, 5)), jnp.arange(2))
  >>> z.shape, aux.tolist(), unflat(z).shape
  ((6, 5), [0, 0, 0, 1, 1, 1], (2, 3, 5))
  """
  victims, restarts = jax.tree.leaves(lanes)[0].shape[:2]
  flat = jax.tree.map(lambda x: x.reshape(victims * restarts, *x.shape[2:]), lanes)
  aux = jax.tree.map(lambda x: jnp.repeat(x, restarts, axis=0), aux)
  unflat = lambda tree: jax.tree.map(lambda x: x.reshape(victims, restarts, *x.shape[1:]), tree)
  return flat, aux, unflat


def vmap_lanes(fn: Callable) -> Callable:
  """Maps a one-lane `fn(state_or_z, aux, shared)` over (victim, restart) axes.

  `aux` holds one entry per victim; `shared` is broadcast to every lane.
  """
  over_lanes = jax.vmap(fn, in_axes=(0, 0, None))

  def mapped(lanes, aux, shared):
    lanes, aux, unflat = flat_lanes(lanes, aux)
    return unflat(over_lanes(lanes, aux, shared))

  return mapped


Step = Callable[[LaneState, PyTree, PyTree], tuple[LaneState, jax.Array]]


def make_chunk(step: Step, chunk_size: int, block_victims: int = 0) -> Step:
  """A jitted `chunk(state, aux, shared, length=chunk_size)` running `length` iterations.

  Returns the new state and the loss trace, shaped (V, R, length); the
  iterations a block skipped are NaN. `length` is static: a run's last,
  shorter chunk (steps not a multiple of the chunk) compiles one more
  program instead of running past `steps`.

  `block_victims` > 0 runs the victims in blocks of that many, one block
  after the other (`lax.map`), each block vmapped for the whole chunk: the
  same iterations and results, but a block's activations and L-BFGS history
  stay in cache, where all victims at once stream them from memory
  (BUILD_NOTES.md, "Throughput"). 0 vmaps every victim at once.

  A block stops iterating as soon as all its lanes are done: the loop is a
  `while_loop` around the vmapped step (not a vmapped loop, which would
  select every lane's carry at every iteration), so a block of converged
  victims costs nothing for the rest of the chunk.
  """
  over_lanes = jax.vmap(step, in_axes=(0, 0, None))

  def chunk(state, aux, shared, length=chunk_size):
    def block(state, aux):
      # Flattened once per block, outside the loop (`flat_lanes` says why).
      state, aux, unflat = flat_lanes(state, aux)
      trace = jnp.full((length, *state.loss.shape), jnp.nan, state.loss.dtype)

      def body(carry):
        i, state, trace = carry
        # A block's lanes start together; a lazy start's evaluating step
        # (init_lane(evaluate=False)) takes no slot of the chunk.
        started = jnp.all(state.evaluations > 0).astype(i.dtype)
        state, loss = over_lanes(state, aux, shared)
        return i + started, state, trace.at[i].set(loss)

      def running(carry):
        i, state, _ = carry
        return (i < length) & ~jnp.all(state.done)

      _, state, trace = jax.lax.while_loop(running, body, (jnp.int32(0), state, trace))
      return unflat((state, jnp.moveaxis(trace, 0, -1)))

    num_victims = state.loss.shape[0]
    if not 0 < block_victims < num_victims:
      return block(state, aux)
    full = num_victims - num_victims % block_victims
    # Explicit sizes, no -1: a leaf may be empty (DLG's (V, 0) fixed labels).
    blocks = lambda t, a, b: jax.tree.map(
        lambda x: x[a:b].reshape((b - a) // block_victims, block_victims, *x.shape[1:]), t)
    state_b, trace_b = jax.lax.map(lambda sa: block(*sa), blocks((state, aux), 0, full))
    flat = lambda t: jax.tree.map(lambda x: x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), t)
    state_b, trace_b = flat(state_b), flat(trace_b)
    if full == num_victims:
      return state_b, trace_b
    rest = jax.tree.map(lambda x: x[full:], (state, aux))
    state_r, trace_r = block(*rest)
    join = lambda a, b: jnp.concatenate([a, b])
    return jax.tree.map(join, state_b, state_r), join(trace_b, trace_r)

  return jax.jit(chunk, donate_argnums=(0,), static_argnames=('length',))


class LoopResult(NamedTuple):
  state: LaneState  # final, (V, R) lanes
  best: jax.Array  # (V,) index of the kept restart
  trace: np.ndarray  # (V, T) loss of the kept restart per iteration
  snapshots: tuple[tuple[int, PyTree], ...]  # (iteration, z of the best lane)
  traces: np.ndarray | None = None  # (V, R, T) loss of every lane per iteration


def best_restart(state: LaneState) -> jax.Array:
  """Lowest finite loss per victim; diverged restarts lose."""
  _, loss = kept(state)
  loss = jnp.where(jnp.isfinite(loss) & ~state.diverged, loss, jnp.inf)
  return jnp.argmin(loss, axis=1)


def take_restart(tree: PyTree, index: jax.Array) -> PyTree:
  """Selects restart `index[v]` of each victim from (V, R, ...) leaves."""
  return jax.tree.map(lambda x: jax.vmap(lambda xv, i: xv[i])(x, index), tree)


def run(chunk_fn: Step, state: LaneState, aux: PyTree, shared: PyTree, *, steps: int,
        chunk_size: int,
        snapshot: Callable[[PyTree], PyTree] = lambda z: z,
        progress: Callable[[int, LaneState, PyTree], None] | None = None) -> LoopResult:
  """Runs chunks until `steps` iterations are done or every lane has stopped.

  After each chunk, `progress(iteration, state, snapshot)` gets the snapshot
  of every victim's best restart that the run records anyway. Iteration 0's
  snapshot after a lazy start (`init_lane(evaluate=False)`: no restart has
  a loss yet) shows each victim's restart 0.
  """
  traces, snapshots = [], [(0, snapshot(take_restart(kept(state)[0], best_restart(state))))]
  done_iters = 0
  while done_iters < steps:
    length = min(chunk_size, steps - done_iters)
    state, trace = chunk_fn(state, aux, shared, length=length)
    done_iters += length
    traces.append(np.asarray(trace))
    best = best_restart(state)
    snapshots.append((done_iters, snapshot(take_restart(kept(state)[0], best))))
    if progress is not None:
      progress(done_iters, state, snapshots[-1][1])
    if bool(jnp.all(state.done)):
      break
  best = best_restart(state)
  full = np.concatenate(traces, axis=-1)[:, :, :steps]
  trace = full[np.arange(full.shape[0]), np.asarray(best)]
  return LoopResult(state, best, trace, tuple(snapshots), full)


def lowest_restarts(state: LaneState, keep: int) -> jax.Array:
  """(V, keep) indices of each victim's `keep` lowest-loss restarts, lowest first.

  Diverged restarts rank last. Only the matching loss decides: the attacker
  sees it, never the ground truth.
  """
  _, loss = kept(state)
  loss = jnp.where(jnp.isfinite(loss) & ~state.diverged, loss, jnp.inf)
  return jnp.argsort(loss, axis=1)[:, :keep]


def take_restarts(tree: PyTree, index: jax.Array) -> PyTree:
  """Selects restarts `index[v, :]` of each victim from (V, R, ...) leaves."""
  return jax.tree.map(lambda x: jax.vmap(lambda xv, i: xv[i])(x, index), tree)
