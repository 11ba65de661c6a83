"""configs/models_study.py: the four cells, and a one-model smoke end to end."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import numpy as np

from configs import models_study as study_config
from dlg_jax import models_study
from dlg_jax import sweep


def setUpModule():
  # Compile time dominates a 6-iteration attack; speed is not under test.
  global _SAVED_OPTIMIZATIONS_FLAG
  _SAVED_OPTIMIZATIONS_FLAG = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)


def tearDownModule():
  jax.config.update('jax_disable_most_optimizations', _SAVED_OPTIMIZATIONS_FLAG)


class ModelsStudyTest(absltest.TestCase):

  def test_cells_are_the_study(self):
    cells = models_study.cells(study_config.get_config())
    self.assertEqual([c.name for c in cells], ['lenet', 'resnet18', 'densenet121',
                                               'inception_v3'])
    self.assertEqual([c.config.data.size for c in cells], [32, 224, 224, 299])
    self.assertEqual([c.config.data.normalize for c in cells],
                     ['', 'imagenet2012', 'imagenet2012', 'imagenet2012'])
    for cell in cells:
      self.assertEqual(cell.config.model.act, 'sigmoid')
      self.assertEqual(cell.config.attack.steps, 300)
      self.assertEqual(cell.config.data.name, 'photos')  # the same images for every model
      self.assertEqual(cell.config.model_init.source, 'random')

  def test_unknown_model_is_named(self):
    config = study_config.get_config()
    config.order = ('lenet', 'vgg16')
    with self.assertRaisesRegex(ValueError, "order names 'vgg16'"):
      models_study.cells(config)

  def test_smoke_writes_table_and_plot(self):
    config = study_config.get_config('smoke')
    config.order = ('lenet',)  # one compiled attack; the other cells share every code path
    with tempfile.TemporaryDirectory() as tmp:
      rows = sweep.launch(config, tmp)
      self.assertLen(rows, 1)
      row = rows[0]
      self.assertEqual((row['model'], row['input_size'], row['steps']), ('lenet', 16, 6))
      self.assertGreater(row['parameters'], 0)
      self.assertGreater(row['final_mse'], 0.0)
      for name in ('table.md', 'table.csv', 'table.json', 'mse_per_step.png', 'curves.json'):
        self.assertGreater(os.path.getsize(os.path.join(tmp, name)), 0, name)
      with open(os.path.join(tmp, 'table.md')) as f:
        header = f.readline()
      for column in ('model', 'input_size', 'final_mse', 'mean_psnr', 'steps', 'seconds'):
        self.assertIn(column, header)
      with open(os.path.join(tmp, 'curves.json')) as f:
        curve = json.load(f)['lenet']
      # A snapshot before the first iteration and after every chunk of 2.
      self.assertEqual(curve['iterations'], [0, 2, 4, 6])
      self.assertAlmostEqual(curve['mean_mse'][-1], row['final_mse'], places=6)

  def test_plot_has_one_line_per_model(self):
    curves = {n: (np.arange(4), np.geomspace(1e-1, 10 ** -(k + 2), 4))
              for k, n in enumerate(('lenet', 'resnet18', 'densenet121', 'inception_v3'))}
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'mse.png')
      models_study.plot_curves(curves, path, 'test')
      self.assertGreater(os.path.getsize(path), 0)


if __name__ == '__main__':
  absltest.main()
