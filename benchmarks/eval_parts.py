"""Where an evaluation's time goes: forward, client gradient, full matching step.

  python benchmarks/eval_parts.py [--victims=8,64] [--classes=16]

Prints ms per victim for three vmapped, jitted programs on the DLG LeNet
(32×32×3): the forward pass; forward + gradient w.r.t. the weights (what the
client computes); and value-and-gradient of the L2 matching loss w.r.t. the
image (one attack evaluation). Random inputs: only the shapes matter here.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp

from dlg_jax import models
from dlg_jax.attacks import objectives
from dlg_jax.client import gradients

FLAGS = flags.FLAGS
flags.DEFINE_list('victims', ['8', '64'], 'Numbers of vmapped victims.')
flags.DEFINE_integer('classes', 16, 'Output classes of the LeNet.')


def _ms_per_victim(fn, args, victims: int, repeats: int = 20) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return 1e3 * (time.perf_counter() - start) / repeats / victims


def main(argv):
  del argv
  k = FLAGS.classes
  model = models.build({'name': 'lenet'}, (32, 32, 3), k)
  variables = model.init(jax.random.key(0))
  client = lambda x, y: gradients.batch_gradients(model, variables, x, jax.nn.one_hot(y, k))
  matching = lambda x, t, y: objectives.l2_distance(client(x, y), t)
  for v in map(int, FLAGS.victims):
    x = jax.random.uniform(jax.random.key(1), (v, 1, 32, 32, 3))
    y = jnp.zeros((v, 1), jnp.int32)
    target = jax.vmap(client)(x, y)
    fwd = _ms_per_victim(jax.vmap(lambda xi: model.apply(variables, xi)), (x,), v)
    grad = _ms_per_victim(jax.vmap(client), (x, y), v)
    full = _ms_per_victim(jax.vmap(jax.value_and_grad(matching)), (x + 0.1, target, y), v)
    print(f'{v:>4} victims: forward {fwd:.3f}  client gradient {grad:.3f}  '
          f'matching value+grad {full:.3f} ms/victim', flush=True)


if __name__ == '__main__':
  app.run(main)
