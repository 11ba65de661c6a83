"""What BatchNorm's mode does to the gradient Inverting Gradients matches.

  python benchmarks/bn_landscape.py [--model=resnet18] [--victims=4] [--classes=10]
      [--noise_db=100,80,60,40,30,20] [--batch=1] [--basin_steps=0]

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

Second table: the same distance for x + σ·n (Gaussian n, σ set by the PSNR
of x′ against x, `--noise_db`), with `--batch` photos in the client's batch:
how far from the truth the objective still tells images apart.

`--basin_steps=N` > 0 adds the optimiser's view: Inverting Gradients
(`solvers.run_adam`, signed Adam at a step of `--basin_lr` × σ, TV 1e-4,
plateau schedule) on the first photo, started at x + σ·n for each PSNR in
`--basin_db` instead of noise, in both modes; it prints the matching loss
at the start, the lowest loss seen, and the PSNR of the image the loop
holds at the end. A start the optimiser improves on lies in the basin of
the truth.

Measured on the 2-core CPU (docs/results/inverting_gradients.md, "Why
train mode stalls"): a change at 60 dB moves
the train-mode gradient by 0.119, the eval-mode one by 3.65e-4; from a
15.8 dB start IG ends at 13.3 dB in train mode and 18.2 dB in eval mode.
≈1 min without `--basin_steps`, 24 min with `--basin_steps=200`.
"""

from __future__ import annotations

from collections.abc import Iterator
import functools
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
from dlg_jax.attacks import losses
from dlg_jax.attacks import objectives
from dlg_jax.attacks import registry
from dlg_jax.attacks import solvers
from dlg_jax.client import gradients
from dlg_jax.client import protocol

FLAGS = flags.FLAGS
flags.DEFINE_string('model', 'resnet18', 'Model registry name.')
flags.DEFINE_integer('victims', 4, 'Photos to average over.')
flags.DEFINE_integer('classes', 10, 'Output classes.')
flags.DEFINE_list('noise_db', ['100', '80', '60', '40', '30', '20'],
                  'PSNRs of the Gaussian perturbations in the second table.')
flags.DEFINE_integer('batch', 1, 'Photos in the client batch for the second table.')
flags.DEFINE_integer('basin_steps', 0, 'IG iterations per start in the basin probe; 0 skips it.')
flags.DEFINE_list('basin_db', ['45', '35', '25', '15'], 'Start PSNRs of the basin probe.')
flags.DEFINE_float('basin_lr', 0.1, 'Signed-Adam step of the basin probe as a fraction of the '
                   'start\'s σ (its RMS distance to the truth).')


def changes(x: jax.Array, other: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
  """The changed images x' compared with x, by name."""
  return {
      '0.8·x (contrast)': 0.8 * x,
      '0.5·x + 0.25': 0.5 * x + 0.25,
      'x + 0.1 (brightness)': jnp.clip(x + 0.1, 0.0, 1.0),
      'another photo': other,
      'uniform noise': jax.random.uniform(key, x.shape),
  }


def _setup(model_name: str, num_photos: int, num_classes: int):
  """(model, untrained variables, photos, their labels), as configs/ig.py sets them up."""
  photos = data.load({'name': 'photos', 'size': 32, 'channels': 3}, num_photos)
  model = models.build({'name': model_name}, (32, 32, 3), num_classes)
  variables = model.init(jax.random.key(0))
  return model, variables, jnp.asarray(photos.images), jnp.asarray(photos.labels)


def _distinct_targets(num_photos: int, num_classes: int) -> jax.Array:
  # One class per photo of a batch, as batch label recovery assumes.
  return jax.nn.one_hot(jnp.arange(num_photos) % num_classes, num_classes)


def distances(model_name: str, num_victims: int, num_classes: int) -> dict[str, dict[str, float]]:
  """{mode: {change: mean cosine distance}} and the mean PSNR of each change."""
  model, variables, images, labels = _setup(model_name, num_victims + 1, num_classes)
  targets = jax.nn.one_hot(labels % num_classes, num_classes)
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


def _perturbed(x: jax.Array, psnr_db: float, key: jax.Array) -> jax.Array:
  noise = jax.random.normal(key, x.shape)
  return x + 10 ** (-psnr_db / 20) * noise / jnp.sqrt(jnp.mean(noise**2))


def noise_distances(model_name: str, num_victims: int, batch: int, num_classes: int,
                    psnrs: list[float]) -> dict[str, dict[float, float]]:
  """{mode: {PSNR of x + σ·n: mean cosine distance}} over `num_victims` batches."""
  model, variables, images, _ = _setup(model_name, num_victims * batch, num_classes)
  targets = _distinct_targets(num_victims * batch, num_classes)
  out: dict[str, dict[float, float]] = {}
  for mode in ('train', 'eval'):
    shared = jax.jit(lambda x, t, train=(mode == 'train'): gradients.batch_gradients(
        model, variables, x, t, train=train))
    rows: dict[float, list[float]] = {}
    for v in range(num_victims):
      x, t = images[v * batch:(v + 1) * batch], targets[v * batch:(v + 1) * batch]
      truth = shared(x, t)
      for psnr in psnrs:
        changed = _perturbed(x, psnr, jax.random.key(100 + v))
        rows.setdefault(psnr, []).append(
            float(objectives.cosine_distance(shared(changed, t), truth)))
    out[mode] = {psnr: float(np.mean(d)) for psnr, d in rows.items()}
  return out


def basin(model_name: str, num_classes: int, starts: list[float], steps: int,
          lr_scale: float) -> Iterator[tuple[str, float, float, float, float, float]]:
  """Yields (mode, start PSNR, start loss, lowest loss, end loss, end PSNR) per start.

  Each start compiles its own loop (minutes on a 2-core CPU), so rows are
  yielded as they finish.

  The step is `lr_scale` × σ of each start: a step fixed in pixels would
  either walk out of a 45 dB start (σ = 0.006) or crawl from a 15 dB one.
  """
  model, variables, images, _ = _setup(model_name, 1, num_classes)
  x, t = images[:1], _distinct_targets(1, num_classes)
  labels = jnp.argmax(t, axis=-1)[None]
  config = {'name': 'ig', 'steps': steps, 'chunk': max(1, steps // 4), 'restarts': 1,
            'schedule': 'plateau', 'plateau_patience': 50, 'tol': 0.0}
  psnr = lambda z: float(10 * np.log10(1.0 / np.mean((np.asarray(z) - np.asarray(x)) ** 2)))
  for mode in ('train', 'eval'):
    train = mode == 'train'
    target = gradients.batch_gradients(model, variables, x, t, train=train)
    loss_fn = functools.partial(losses.matching_loss, model=model, train=train,
                                protocol=protocol.FEDSGD, distance='cosine', tv=1e-4)
    for db in starts:
      start = jnp.clip(_perturbed(x, db, jax.random.key(7)), 0.0, 1.0)
      last = []
      result = solvers.run_adam(
          jax.random.key(0), registry.complete({**config, 'lr': lr_scale * 10 ** (-db / 20)}),
          loss_fn=loss_fn, init_z=lambda k, s=start: {'image': s}, project=solvers.box,
          aux={'target': jax.tree.map(lambda g: g[None], target), 'labels': labels},
          shared={'variables': variables},
          progress=lambda it, state, snap: last.append(state.z['image'][0, 0]))
      trace = np.asarray(result.loss_trace[0])
      start_loss = float(loss_fn({'image': start}, {'target': target, 'labels': labels[0]},
                                 variables=variables))
      yield (mode, psnr(start), start_loss, float(np.nanmin(trace)),
             float(trace[~np.isnan(trace)][-1]), psnr(last[-1]))


def main(argv):
  del argv
  table = distances(FLAGS.model, FLAGS.victims, FLAGS.classes)
  names = list(table['train'])
  print(f'{FLAGS.model}, untrained, batch of one, mean over {FLAGS.victims} photos: '
        'cosine distance between the shared gradients of x and x′')
  print(f'{"x′":<22}' + ''.join(f'{mode:>16}' for mode in table))
  for name in names:
    print(f'{name:<22}' + ''.join(f'{table[mode][name]:>16.4f}' for mode in table))
  psnrs = [float(p) for p in FLAGS.noise_db]
  sweep = noise_distances(FLAGS.model, FLAGS.victims, FLAGS.batch, FLAGS.classes, psnrs)
  print(f'\nx′ = x + σ·n (Gaussian), batch of {FLAGS.batch}: cosine distance by PSNR of x′')
  print(f'{"BatchNorm":<10}' + ''.join(f'{p:>10g} dB' for p in psnrs))
  for mode, row in sweep.items():
    print(f'{mode:<10}' + ''.join(f'{row[p]:>13.2e}' for p in psnrs))
  if FLAGS.basin_steps > 0:
    print(f'\nIG from x + σ·n, first photo, {FLAGS.basin_steps} iterations, '
          f'step {FLAGS.basin_lr:g}·σ, plateau schedule')
    print(f'{"BatchNorm":<10}{"start PSNR":>12}{"start loss":>12}{"lowest loss":>13}'
          f'{"end loss":>10}{"end PSNR":>10}', flush=True)
    for mode, db, l0, lmin, lend, end in basin(FLAGS.model, FLAGS.classes,
                                               [float(d) for d in FLAGS.basin_db],
                                               FLAGS.basin_steps, FLAGS.basin_lr):
      print(f'{mode:<10}{db:>12.2f}{l0:>12.4f}{lmin:>13.4f}{lend:>10.4f}{end:>10.2f}',
            flush=True)


if __name__ == '__main__':
  app.run(main)
