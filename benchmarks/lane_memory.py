"""What restarts cost in memory: the attack chunk's buffers for V victims × R restarts.

  python benchmarks/lane_memory.py [--model=resnet18] [--size=32] [--victims=4] [--restarts=1,4,8]

`optimize.flat_lanes` runs (victim, restart) as one lane axis and repeats
each victim's public data (`aux`: the shared gradient, the labels) over its
restarts, so that data is held R times. This prints, for each R, XLA's own
account of the compiled L-BFGS chunk (`Compiled.memory_analysis()`: its
arguments, outputs and temporaries; nothing runs), beside the same number of
lanes as V·R distinct victims with one restart each, whose gradients are
arguments and nothing is repeated: the difference in temporaries is what
the repetition costs. Sigmoid, BatchNorm in train mode, random weights, as
configs/models_study.py. Results: docs/results/throughput.md.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import matching_problem  # pylint: disable=g-import-not-at-top,wrong-import-position
from dlg_jax.attacks import solvers

_MODEL = flags.DEFINE_string('model', 'resnet18', 'Zoo model name.')
_SIZE = flags.DEFINE_integer('size', 32, 'Input height and width.')
_VICTIMS = flags.DEFINE_integer('victims', 4, 'Victims in the block.')
_RESTARTS = flags.DEFINE_list('restarts', ['1', '4', '8'], 'Restarts per victim.')

_MB = 1 << 20


def main(argv):
  del argv
  jax.config.update('jax_enable_compilation_cache', False)
  problem = matching_problem.build({'name': _MODEL.value, 'act': 'sigmoid'}, _SIZE.value, 10)
  variables, x = problem.variables, problem.truth
  target = matching_problem.shared_gradient(problem, train=True)
  gradient_mb = sum(a.nbytes for a in jax.tree.leaves(target)) / _MB
  loss = matching_problem.loss_function(problem.model, distance='l2', train=True)
  config = {**solvers.LBFGS_DEFAULTS, 'chunk': 1, 'block_victims': 0}
  shared = {'variables': variables}

  def analysis(victims: int, restarts: int):
    aux = {'target': jax.tree.map(lambda a: jnp.repeat(a[None], victims, 0), target),
           'labels': jnp.ones((victims, 1), jnp.int32)}
    z = {'image': jax.ShapeDtypeStruct((victims, restarts, 1, *x.shape[1:]), jnp.float32)}
    programs = solvers.programs('lbfgs', loss, config)
    state = jax.eval_shape(programs.init, z, aux, shared)
    chunk = getattr(programs.chunk, '__wrapped__', programs.chunk)  # the jitted chunk itself
    stats = chunk.lower(state, aux, shared).compile().memory_analysis()
    solvers.clear_programs()
    return [stats.argument_size_in_bytes / _MB, stats.output_size_in_bytes / _MB,
            stats.temp_size_in_bytes / _MB]

  v = _VICTIMS.value
  print(f'{_MODEL.value} {_SIZE.value} px, {v} victims; one shared gradient {gradient_mb:.1f} MB')
  print('| restarts R | lanes V·R | arguments MB | outputs MB | temporaries MB '
        '| temporaries, V·R victims × 1 restart | extra for repeating |')
  print('| --- | --- | --- | --- | --- | --- | --- |')
  for r in map(int, _RESTARTS.value):
    sizes = analysis(v, r)
    # The same lanes as V·R distinct victims: their gradients are arguments,
    # nothing is repeated; the difference in temporaries is the repeat's price.
    control = analysis(v * r, 1)[2]
    print(f'| {r} | {v * r} | ' + ' | '.join(f'{s:.1f}' for s in sizes) +
          f' | {control:.1f} | {sizes[2] - control:.1f} |', flush=True)


if __name__ == '__main__':
  app.run(main)
