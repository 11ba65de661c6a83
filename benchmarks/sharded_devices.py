"""iDLG on the same victims sharded over 1, 2 and 4 simulated CPU devices.

  python benchmarks/sharded_devices.py                  # 8 victims, 100 iterations
  python benchmarks/sharded_devices.py --device_victims=0   # the chunk split evenly

Re-executes itself with XLA_FLAGS=--xla_force_host_platform_device_count=4,
then attacks one chunk (`experiment.attack_victims`) of Fashion-MNIST test images
(IDX files; the offline photos if they are missing) on meshes of 1, 2 and 4
devices, `--device_victims` victims per device per program (`parallel.rounds`:
with 2, one device runs 4 rounds of 2, two devices 2 rounds of 4, four
devices one round of 8). Prints seconds per chunk (the second of two calls;
the first compiles) and whether every per-victim number is bitwise equal to
1 device's, else the largest difference.
Simulated devices share this machine's cores, so they are no faster here;
the figure that matters is the difference column.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

_FLAG = '--xla_force_host_platform_device_count=4'

if _FLAG not in os.environ.get('XLA_FLAGS', ''):
  env = dict(os.environ, XLA_FLAGS=(os.environ.get('XLA_FLAGS', '') + ' ' + _FLAG).strip(),
             JAX_PLATFORMS='cpu')
  sys.exit(subprocess.call([sys.executable, *sys.argv], env=env))

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import idlg_fashion_mnist  # pylint: disable=g-import-not-at-top,wrong-import-position
from dlg_jax import experiment  # pylint: disable=g-import-not-at-top,wrong-import-position
from dlg_jax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('victims', 8, 'Victims in the chunk.')
flags.DEFINE_integer('steps', 100, 'L-BFGS iterations.')
flags.DEFINE_integer('device_victims', 2, 'Victims per device per program (run.device_victims; '
                     '0: the chunk split evenly over the devices).')


def main(argv):
  del argv
  config = idlg_fashion_mnist.get_config().to_dict()
  config['data']['num_victims'] = FLAGS.victims
  config['attack']['steps'] = FLAGS.steps
  config['run']['device_victims'] = FLAGS.device_victims
  if not os.path.isdir(config['data']['path']):
    config['data'].update(name='photos', size=32, channels=3)
  exp = experiment.setup(config)
  ids = np.arange(FLAGS.victims)
  base = None
  print(f'{FLAGS.victims} victims of {config["data"]["name"]}, {FLAGS.steps} iterations, '
        f'device_victims={FLAGS.device_victims}')
  for k in (1, 2, 4):
    mesh = parallel.victim_mesh(jax.local_devices()[:k])
    experiment.attack_victims(exp, ids, mesh=mesh, device_victims=FLAGS.device_victims)  # compile
    start = time.perf_counter()
    result, _, scores, _ = experiment.attack_victims(exp, ids, mesh=mesh,
                                                     device_victims=FLAGS.device_victims)
    seconds = time.perf_counter() - start
    out = {'images': np.asarray(result.images), 'loss': np.asarray(result.loss),
           'psnr': scores.psnr, 'labels': np.asarray(result.labels),
           'iterations': np.asarray(result.iterations)}
    base = base or out
    diff = {key: float(np.max(np.abs(out[key] - base[key]))) for key in out}
    same = all(np.array_equal(out[key], base[key]) for key in out)
    print(f'{k} device(s): {seconds:.1f} s per chunk; bitwise equal to 1 device: {same}; '
          'max |difference|: ' + ', '.join(f'{key} {value:.2g}' for key, value in diff.items()),
          flush=True)


if __name__ == '__main__':
  app.run(main)
