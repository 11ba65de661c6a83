"""What BatchNorm's mode does to the gradient Inverting Gradients matches.

  python benchmarks/bn_landscape.py [--model=resnet18] [--victims=4] [--classes=10]

For each of the first `--victims` offline photos x (32×32×3, batch of one,
untrained weights as in configs/ig.py), prints the cosine distance
(objectives.cosine_distance, the IG objective without TV) between the
gradient the client shares for x and the gradient of a changed image x':
lower contrast (0.8·x, 0.5·x + 0.25), brighter (x + 0.1, clipped), another
photo, uniform noise. Means over the victims, for BatchNorm in train mode
(the victim's own batch statistics) and in eval mode (running statistics).

Why: configs/ig.py's ResNet-18 stalls at ≈8 dB in train mode where eval
mode keeps improving (BUILD_NOTES.md, "Inverting Gradients"). A distance
near 0 for a changed image means the attacker cannot tell it from the
truth; a distance near that of another photo means the loss is steep
around the truth but gives a random start little to follow.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from dlg_jax import data
from dlg_jax import models
from dlg_jax.attacks import objectives
from dlg_jax.client import gradients

FLAGS = flags.FLAGS
flags.DEFINE_string('model', 'resnet18', 'Model registry name.')
flags.DEFINE_integer('victims', 4, 'Photos to average over.')
flags.DEFINE_integer('classes', 10, 'Output classes.')


def changes(x: jax.Array, other: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
  """The changed images x' compared with x, by name."""
  return {
      '0.8·x (contrast)': 0.8 * x,
      '0.5·x + 0.25': 0.5 * x + 0.25,
      'x + 0.1 (brightness)': jnp.clip(x + 0.1, 0.0, 1.0),
      'another photo': other,
      'uniform noise': jax.random.uniform(key, x.shape),
  }


def distances(model_name: str, num_victims: int, num_classes: int) -> dict[str, dict[str, float]]:
  """{mode: {change: mean cosine distance}} and the mean PSNR of each change."""
  photos = data.load({'name': 'photos', 'size': 32, 'channels': 3}, num_victims + 1)
  model = models.build({'name': model_name}, (32, 32, 3), num_classes)
  variables = model.init(jax.random.key(0))
  images = jnp.asarray(photos.images)
  targets = jax.nn.one_hot(jnp.asarray(photos.labels) % num_classes, num_classes)
  out: dict[str, dict[str, list[float]]] = {'train': {}, 'eval': {}, 'PSNR of x′ (dB)': {}}
  for mode in ('train', 'eval'):
    shared = jax.jit(lambda x, t, train=(mode == 'train'): gradients.batch_gradients(
        model, variables, x[None], t[None], train=train))
    for v in range(num_victims):
      truth = shared(images[v], targets[v])
      for name, changed in changes(images[v], images[v + 1], jax.random.key(v)).items():
        d = float(objectives.cosine_distance(shared(changed, targets[v]), truth))
        out[mode].setdefault(name, []).append(d)
        if mode == 'train':
          psnr = float(10 * jnp.log10(1.0 / jnp.mean((changed - images[v]) ** 2)))
          out['PSNR of x′ (dB)'].setdefault(name, []).append(psnr)
  return {mode: {k: float(np.mean(v)) for k, v in rows.items()} for mode, rows in out.items()}


def main(argv):
  del argv
  table = distances(FLAGS.model, FLAGS.victims, FLAGS.classes)
  names = list(table['train'])
  print(f'{FLAGS.model}, untrained, batch of one, mean over {FLAGS.victims} photos: '
        'cosine distance between the shared gradients of x and x′')
  print(f'{"x′":<22}' + ''.join(f'{mode:>16}' for mode in table))
  for name in names:
    print(f'{name:<22}' + ''.join(f'{table[mode][name]:>16.4f}' for mode in table))


if __name__ == '__main__':
  app.run(main)
