"""One-shot imprint (Fowl et al., ICLR 2022): one target out of 64 users × 64 images.

  python benchmarks/one_shot_imprint.py [--path=/tmp/fmnist/usr/share/datasets/fashion-mnist]
      [--targets=0,1,500,1000,1500,2000,2500,3000,3500,4000,4095]

configs/imprint.py with 1 victim made of 64 users of 64 Fashion-MNIST test
images, the server seeing only the sum of their updates. For each target
index, the server places its two bins (server.bins=2) server.target_width
apart around that image's mean brightness (server.target: the server is
assumed to know the target's measurement), and the imprint read-out's
candidates are compared with the target: exact if the largest pixel error
of the best candidate is below metrics.EXACT_TOLERANCE. One target through
launch.py, scored by the optimal matching over all 4,096 images (which no
longer builds the 52 GB (B, B, d) difference): configs/one_shot.py.
"""

import sys
import time

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, __file__.rsplit('/benchmarks/', 1)[0])

from configs import imprint as imprint_config  # pylint: disable=g-import-not-at-top
from dlg_jax import data as data_lib
from dlg_jax import experiment
from dlg_jax import metrics
from dlg_jax.attacks import registry
from dlg_jax.client import simulate
from dlg_jax.types import Private

_PATH = flags.DEFINE_string('path', '/tmp/fmnist/usr/share/datasets/fashion-mnist', 'IDX files.')
_TARGETS = flags.DEFINE_list('targets', '0,1,500,1000,1500,2000,2500,3000,3500,4000,4095',
                             'indices of the targets among the 4096 images.')
USERS = BATCH = 64


def main(argv):
  del argv
  config = imprint_config.get_config().to_dict()
  config['data'].update(path=_PATH.value, num_victims=1)
  config['client'].update(users=USERS, batch_size=BATCH)
  config['server']['bins'] = 2
  images = data_lib.load(config['data'], USERS * BATCH).images
  bright = images.reshape(len(images), -1).astype(np.float64).mean(1)
  exact = 0
  for target in map(int, _TARGETS.value):
    start = time.perf_counter()
    config['server']['target'] = float(bright[target])
    exp = experiment.setup(config)
    truth = Private(jnp.asarray(exp.truth.images), jnp.asarray(exp.truth.labels))
    update, _, _ = simulate.client_update(exp.model, exp.variables, truth, exp.k_client,
                                          exp.client)
    result = registry.get('imprint').run(update, exp.model, exp.variables, exp.k_attack,
                                         exp.attack)
    rec = np.asarray(result.images[0]).reshape(len(images), -1)
    error = np.abs(rec - images[target].reshape(1, -1)).max(1).min()
    nearest = np.sort(np.abs(np.delete(bright, target) - bright[target]))[0]
    exact += error < metrics.EXACT_TOLERANCE
    print(f'target {target}: brightness {bright[target]:.6f}, nearest other image '
          f'{nearest:.1e} away, best candidate max error {error:.1e}, '
          f'{time.perf_counter() - start:.1f} s', flush=True)
  print(f'exact: {exact} of {len(_TARGETS.value)} targets')


if __name__ == '__main__':
  app.run(main)
