"""The two solvers of the optimisation attacks, each with one set of defaults.

* L-BFGS (`run_lbfgs`): DLG, iDLG and DIA/WIIG's `optimizer='lbfgs'`
  variant. optax's L-BFGS with a line search, the compact-form direction and
  victims in vmapped blocks of 8 by default (BUILD_NOTES.md, "Throughput").
* Signed Adam (`run_adam`): Inverting Gradients, DIA and WIIG. Adam on the
  *sign* of the image gradient (other variables keep theirs), a projection
  after every step (pixels boxed to [0, 1]), the learning rate cut ×0.1 at
  3/8, 5/8 and 7/8 of the run or on a plateau, the best iterate kept, an
  optional early stop.

Both run on `lanes.run_lanes`; an attack brings its loss, its lane variables
and its public data. `complete` fills an attack config from its defaults.

References:
  Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS 2019 (L-BFGS).
  Geiping, Bauermeister, Dröge, Moeller, "Inverting Gradients — How easy is
  it to break privacy in federated learning?", NeurIPS 2020 (signed Adam).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from dlg_jax.attacks import lanes
from dlg_jax.attacks import optimize
from dlg_jax.attacks import stored
from dlg_jax.errors import ConfigError
from dlg_jax.types import AttackResult, PyTree

LBFGS_DEFAULTS = {
    **lanes.DEFAULTS,
    'steps': 2500,  # L-BFGS iterations (each with its line search)
    'chunk': 100,  # iterations per compiled chunk (progress granularity)
    'memory': 100,  # L-BFGS history
    'linesearch': 'backtracking',  # backtracking (Armijo) | zoom (strong Wolfe)
    'linesearch_steps': 20,
    'lbfgs_form': 'compact',  # compact | two_loop: the same direction (optimize.lbfgs)
    'tol': 1e-12,  # stop a lane once its matching loss is this small
    # ... or this small relative to the shared gradient's squared norm (the
    # L2 loss of a zero gradient): scale-free; 0 = off.
    'rel_tol': 0.0,
    # The stall rule (`optimize._finish`): stop a lane once its loss has not
    # fallen by a factor (1 - stop_rtol) for stop_patience iterations; 0 = never.
    'stop_patience': 0,
    'stop_rtol': 0.0,
    # Victims per vmapped block run one after the other (0: all at once);
    # same results, faster in cache (optimize.make_chunk).
    'block_victims': 8,
}

SCHEDULES = ('multistep', 'plateau')
ADAM_DEFAULTS = {
    **lanes.DEFAULTS,
    'steps': 24_000,  # Geiping et al.'s run
    'chunk': 200,
    'lr': 0.1,
    # 'multistep' (the paper's ×0.1 at 3/8, 5/8, 7/8) | 'plateau' (×0.1 after
    # plateau_patience steps without a new best loss, the DIA code's choice).
    'schedule': 'multistep',
    'plateau_patience': 800,
    'stop_patience': 0,  # early stop after this many steps without a new best; 0 = never
    'stop_rtol': 0.0,  # what counts as new: below (1 - stop_rtol) × the last best
    'tol': 0.0,
    'block_victims': 0,
}

# By `attack.optimizer`, for attacks that can use either solver.
DEFAULTS = {'lbfgs': LBFGS_DEFAULTS, 'adam': ADAM_DEFAULTS}


def complete(defaults: Mapping[str, Any], config: Mapping[str, Any],
             check: Callable[[Mapping[str, Any]], None]) -> dict[str, Any]:
  """`defaults` overlaid by `config`, checked by `check`; a new dict.

  An attack that can use either solver has an `optimizer` field, and its
  defaults carry its default solver's values of the fields both solvers read
  (steps, chunk, tol, block_victims); a config choosing the other solver
  gets that solver's defaults for them, so that each solver has one set of
  defaults whichever attack runs it.

  >>> defaults = {'optimizer': 'adam', **ADAM_DEFAULTS}
  >>> complete(defaults, {'optimizer': 'lbfgs', 'steps': 7}, lambda c: None)['tol']
  1e-12
  """
  filled = dict(defaults)
  optimizer = config.get('optimizer', filled.get('optimizer'))
  if optimizer != filled.get('optimizer') and optimizer in DEFAULTS:
    filled.update(DEFAULTS[optimizer])
  filled.update(config)
  check(filled)
  return filled


def check_lbfgs(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming the first bad L-BFGS or lane field."""
  optimize.check_choice(config, 'linesearch', optimize.LINESEARCHES)
  optimize.check_positive(config, ('memory', 'linesearch_steps'))
  optimize.check_choice(config, 'lbfgs_form', optimize.LBFGS_FORMS)
  rel_tol = config['rel_tol']
  if isinstance(rel_tol, bool) or not isinstance(rel_tol, (int, float)) or not 0 <= rel_tol < 1:
    raise ConfigError(f'attack.rel_tol must be in [0, 1) (0: off; a lane stops once its loss is '
                      f'below rel_tol × the shared gradient\'s squared norm), got {rel_tol!r}.')
  check_stop(config)
  lanes.check_lanes(config)


def check_stop(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming `attack.stop_patience` or `attack.stop_rtol`.

  >>> check_stop({'stop_patience': 100, 'stop_rtol': 1.5})
  Traceback (most recent call last):
  dlg_jax.errors.ConfigError: attack.stop_rtol must be in [0, 1) (the relative fall that resets attack.stop_patience), got 1.5.
  """
  patience, rtol = config['stop_patience'], config['stop_rtol']
  if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
    raise ConfigError(f'attack.stop_patience must be an integer >= 0 (0: no early stop), '
                      f'got {patience!r}.')
  if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 <= rtol < 1:
    raise ConfigError(f'attack.stop_rtol must be in [0, 1) (the relative fall that resets '
                      f'attack.stop_patience), got {rtol!r}.')


def run_lbfgs(key: jax.Array, config: Mapping[str, Any], *, loss_fn: optimize.LossFn,
              init_z: Callable[[jax.Array], PyTree], aux: PyTree,
              fixed_labels: jax.Array | None, shared: PyTree, progress=None) -> AttackResult:
  """Minimises `loss_fn` over every lane with L-BFGS (`LBFGS_DEFAULTS` fields).

  Args:
    key: the attacker's key (`lanes.lane_keys`).
    config: a completed attack config.
    loss_fn: (z, aux, **shared) -> scalar, one lane's objective.
    init_z: key -> one lane's variables, holding 'image'.
    aux, fixed_labels, shared, progress: as `lanes.run_lanes`.
  """
  compiled = programs('lbfgs', loss_fn, config)
  return lanes.run_lanes(key, config, aux, fixed_labels, shared=shared, init_z=init_z,
                         compiled=compiled, progress=progress)


def lr_schedule(lr: float, steps: int) -> optax.Schedule:
  """×0.1 at 3/8, 5/8 and 7/8 of the run (Geiping et al.'s MultiStepLR).

  >>> [round(float(lr_schedule(1.0, 8)(i)), 6) for i in (2, 3, 5, 7)]
  [1.0, 0.1, 0.01, 0.001]
  """
  return optax.piecewise_constant_schedule(
      lr, {int(steps * f): 0.1 for f in (3 / 8, 5 / 8, 7 / 8)})


def adam(config: Mapping[str, Any]) -> optax.GradientTransformationExtraArgs:
  """Adam with the run's learning-rate schedule.

  'multistep' is Geiping et al.'s (×0.1 at 3/8, 5/8, 7/8 of `steps`);
  'plateau' is the DIA code's ReduceLROnPlateau (×0.1 after `plateau_patience`
  steps without a relative improvement of 1e-4, torch's default threshold).
  """
  lr = float(config['lr'])
  if config['schedule'] == 'plateau':
    return optax.chain(
        optax.adam(lr),
        optax.contrib.reduce_on_plateau(factor=0.1, patience=int(config['plateau_patience']),
                                        rtol=1e-4, accumulation_size=1))
  return optax.chain(optax.adam(lr_schedule(lr, int(config['steps']))))


def signed_image_grad(grad: PyTree) -> PyTree:
  """Geiping et al.'s sign on the image gradient; other variables keep theirs."""
  return {**grad, 'image': jnp.sign(grad['image'])}


def box(z: PyTree) -> PyTree:
  """Pixels back into the data range [0, 1].

  >>> box({'image': jnp.array([-1., .5, 2.])})['image']
  Array([0. , 0.5, 1. ], dtype=float32)
  """
  return {**z, 'image': jnp.clip(z['image'], 0.0, 1.0)}


def check_adam(config: Mapping[str, Any]) -> None:
  """Raises ConfigError naming the first bad signed-Adam or lane field."""
  if not float(config['lr']) > 0:
    raise ConfigError(f'attack.lr must be > 0, got {config["lr"]}.')
  optimize.check_choice(config, 'schedule', SCHEDULES)
  if config['schedule'] == 'plateau':
    optimize.check_positive(config, ('plateau_patience',))
  check_stop(config)
  lanes.check_lanes(config)


def run_adam(key: jax.Array, config: Mapping[str, Any], *, loss_fn: optimize.LossFn,
             init_z: Callable[[jax.Array], PyTree], aux: PyTree, shared: PyTree,
             project: Callable[[PyTree], PyTree] = box, progress=None) -> AttackResult:
  """Minimises `loss_fn` over every lane with signed Adam (`ADAM_DEFAULTS` fields).

  Signed Adam on the image (other variables get their raw gradient),
  `project` after each step, best-so-far kept, early stop after
  `stop_patience` steps without improvement (by a factor 1 − `stop_rtol`).
  The labels are `aux['labels']`.

  Args:
    key: the attacker's key (`lanes.lane_keys`).
    config: a completed attack config.
    loss_fn: (z, aux, **shared) -> scalar, one lane's objective.
    init_z: key -> one lane's variables, holding 'image'.
    aux, shared, progress: as `lanes.run_lanes`.
    project: maps the variables back into their domain after a step.
  """
  compiled = programs('adam', loss_fn, config, project)
  return lanes.run_lanes(key, config, aux, aux['labels'], shared=shared, init_z=init_z,
                         compiled=compiled, progress=progress)


# What a solver's programs depend on, besides the loss: everything else in an
# attack config (labels, init, restarts, ...) changes the data, not the program.
_PROGRAM_FIELDS = {
    'lbfgs': ('memory', 'linesearch_steps', 'linesearch', 'lbfgs_form', 'tol', 'rel_tol',
              'stop_patience', 'stop_rtol', 'chunk', 'block_victims'),
    'adam': ('lr', 'schedule', 'steps', 'plateau_patience', 'stop_patience', 'stop_rtol', 'tol',
             'chunk', 'block_victims'),
}


def programs(solver: str, loss_fn: optimize.LossFn, config: Mapping[str, Any],
             project: Callable[[PyTree], PyTree] = box) -> lanes.Programs:
  """The solver's compiled programs for `loss_fn` and `config`, built once.

  Every victim chunk, device round and sweep cell of a run that asks for the
  same solver settings and an equal loss (`losses.MatchingLoss` compares by
  value) gets the same jitted functions, so JAX traces and compiles each
  program once per shape (tests/solvers_test.py counts the traces). A loss
  that cannot be hashed (a plain function) gets new programs each call.
  """
  settings = tuple((f, config[f]) for f in _PROGRAM_FIELDS[solver])
  try:
    hash((loss_fn, settings, project))
  except TypeError:
    return _build_programs(solver, loss_fn, settings, project)
  return _cached_programs(solver, loss_fn, settings, project)


def traced_once(loss_fn: optimize.LossFn) -> optimize.LossFn:
  """`loss_fn` as a `jax.jit` of its own inside the solver's programs.

  Why: the programs differentiate the loss more than once (Adam's init and
  chunk; L-BFGS's two-loop init), and under `vmap` the line search's
  `while_loop` batches its body more than once (until the batched carries
  settle). A jitted loss is traced once and reached as one
  call equation, whose batched and differentiated forms JAX caches; XLA
  inlines it, so the compiled program is the same. Warm-cache start of
  ResNet-18 CIFAR, trace + lower of init and chunk (2026-12-03, quiet):
  IG 4.52 → 3.62 s (the chunk's trace 1.47 → 0.14 s), DLG 10.36 → 9.09 s.
  """
  return jax.jit(loss_fn)


def _build_programs(solver: str, loss_fn: optimize.LossFn, settings: tuple[tuple[str, Any], ...],
                    project: Callable[[PyTree], PyTree]) -> lanes.Programs:
  config = dict(settings)
  identity = stored.fingerprint((solver, loss_fn, settings, project))
  chunk, block = int(config['chunk']), int(config['block_victims'])
  patience, rtol = int(config['stop_patience']), float(config['stop_rtol'])
  loss_fn = traced_once(loss_fn)
  if solver == 'lbfgs':
    opt = optimize.lbfgs(int(config['memory']), int(config['linesearch_steps']),
                         config['linesearch'], form=config['lbfgs_form'])
    step = functools.partial(optimize.lbfgs_step, opt, loss_fn, float(config['tol']),
                             patience=patience, rtol=rtol)
    # optax's two-loop form would take a zero first step for ever (γ = 0).
    init = functools.partial(optimize.init_lane, opt, loss_fn, track_stall=patience > 0,
                             rel_tol=float(config['rel_tol']),
                             evaluate=config['lbfgs_form'] != 'compact')
    return lanes.programs(init, step, chunk, block, identity)
  opt = adam(config)
  step = functools.partial(optimize.first_order_step, opt, loss_fn, float(config['tol']),
                           project, signed_image_grad, patience=patience, rtol=rtol)
  return lanes.programs(functools.partial(optimize.init_lane, opt, loss_fn, track_best=True),
                        step, chunk, block, identity)


# Bounded: each entry holds compiled executables; a sweep revisits few settings.
_cached_programs = functools.lru_cache(maxsize=16)(_build_programs)


def clear_programs() -> None:
  """Forgets the programs built so far (as a new process would start)."""
  _cached_programs.cache_clear()
