"""Tests for dlg_jax.sweeps.models_study with configs/models_study.py."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import numpy as np

from configs import models_study as study_config
from dlg_jax import report
from dlg_jax import sweeps
from dlg_jax.sweeps import grid
from dlg_jax.sweeps import models_study


def setUpModule():
  # Compile time dominates a 6-iteration attack; speed is not under test.
  global _SAVED_OPTIMIZATIONS_FLAG
  _SAVED_OPTIMIZATIONS_FLAG = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)


def tearDownModule():
  jax.config.update('jax_disable_most_optimizations', _SAVED_OPTIMIZATIONS_FLAG)


def _fixture_runner(config, workdir):
  """A run's public records, as the runner writes them, without attacking."""
  steps = int(config.attack.steps)
  its = list(range(0, steps + 1, 2))
  mse = [[0.1 / (1 + it), 0.3 / (1 + it)] for it in its]
  os.makedirs(workdir)
  report.write_json(os.path.join(workdir, 'curves.json'),
                    {'iterations': its, 'mean_mse': [float(np.mean(m)) for m in mse],
                     'mse': mse})
  report.write_json(os.path.join(workdir, 'metrics.json'), {
      'summary': {'mean_mse': float(np.mean(mse[-1])), 'mean_psnr': 20.0, 'seconds': 3.0},
      'victims': [{'iterations': steps}, {'iterations': steps - 1}]})


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
      for field in models_study.SWEEP_FIELDS:
        self.assertNotIn(field, cell.config)

  def test_unknown_model_is_named(self):
    config = study_config.get_config()
    config.order = ('lenet', 'vgg16')
    with self.assertRaisesRegex(ValueError, "order names 'vgg16'"):
      models_study.cells(config)

  def test_table_and_curves_come_from_the_runs_public_records(self):
    config = study_config.get_config('smoke')
    with tempfile.TemporaryDirectory() as tmp:
      rows = grid.run(models_study.cells(config), tmp, runner=_fixture_runner)
      self.assertLen(rows, 3)
      curves = {name: models_study.read_curve(os.path.join(tmp, name)) for name in config.order}
      np.testing.assert_array_equal(curves['lenet'][0], [0, 2, 4, 6])
      np.testing.assert_allclose(curves['lenet'][1][0], 0.2)
      # models_study.run on finished cells: reads back, runs nothing.
      rows = models_study.run(config, tmp)
      self.assertEqual([r['model'] for r in rows], list(config.order))
      for row in rows:
        self.assertEqual(row['steps'], 6)
        self.assertAlmostEqual(row['seconds_per_step'], 0.5)
        self.assertGreater(row['parameters'], 0)
      with open(os.path.join(tmp, 'curves.json')) as f:
        self.assertEqual(json.load(f)['resnet18']['iterations'], [0, 2, 4, 6])
      os.remove(os.path.join(tmp, 'lenet', 'curves.json'))
      with self.assertRaisesRegex(FileNotFoundError, 'curves.json'):
        models_study.run(config, tmp)

  def test_smoke_writes_table_and_plot(self):
    config = study_config.get_config('smoke')
    config.order = ('lenet',)  # one compiled attack; the other cells share every code path
    with tempfile.TemporaryDirectory() as tmp:
      rows = sweeps.launch(config, tmp)
      self.assertLen(rows, 1)
      row = rows[0]
      self.assertEqual((row['model'], row['input_size'], row['steps']), ('lenet', 16, 6))
      self.assertGreater(row['parameters'], 0)
      self.assertGreater(row['final_mse'], 0.0)
      for name in ('table.md', 'table.csv', 'table.json', 'mse_per_step.png', 'curves.json'):
        self.assertGreater(os.path.getsize(os.path.join(tmp, name)), 0, name)
      with open(os.path.join(tmp, 'table.md')) as f:
        self.assertEqual(f.readline().strip('|\n ').split(' | '), list(models_study.COLUMNS))
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
