"""configs/dia.py and configs/dropout_sweep.py end to end (their :smoke)."""

import json
import os
import tempfile

from absl.testing import absltest

from configs import dia as dia_config
from configs import dropout_sweep as sweep_config
from dlg_jax import dropout_sweep
from dlg_jax import experiment
from dlg_jax import sweep


class DiaConfigTest(absltest.TestCase):

  def test_smoke_runs_dia_with_private_masks(self):
    with tempfile.TemporaryDirectory() as tmp:
      record = experiment.run(dia_config.get_config('smoke'), tmp)
      with open(os.path.join(tmp, 'config.json')) as f:
        written = json.load(f)
    self.assertEqual(written['attack']['name'], 'dia')
    self.assertFalse(written['client']['reveal_masks'])
    self.assertEqual(written['model']['dropout_rate'], 0.25)
    self.assertEqual(record['summary']['num_victims'], 2)


class DropoutSweepTest(absltest.TestCase):

  def test_cells_cover_the_grid_and_reveal_masks_only_to_wiig(self):
    config = sweep_config.get_config()
    cells = dropout_sweep.cells(config)
    self.assertLen(cells, 3 * 4 * 3 + 4 * 4)
    for cell in cells:
      self.assertEqual(cell.config.client.reveal_masks,
                       cell.labels['attack'] in ('wiig', 'wiig_lbfgs'))
      self.assertEqual(cell.config.model.dropout_rate, cell.labels['rate'])
    zheng = [c for c in cells if c.labels['group'] == 'zheng']
    self.assertEqual({c.labels['model'] for c in zheng}, {'lenet'})
    self.assertEqual({c.config.attack.name for c in zheng}, {'dlg', 'idlg', 'dia', 'wiig'})

  def test_bad_grid_values_are_named(self):
    config = sweep_config.get_config()
    config.groups.dia.rates = (0.0, 1.0)
    with self.assertRaisesRegex(ValueError, r'rate 1.0 is outside \[0, 1\)'):
      dropout_sweep.cells(config)
    config = sweep_config.get_config()
    config.groups.dia.attacks = ('ig', 'dia2')
    with self.assertRaisesRegex(ValueError, "attack 'dia2'"):
      dropout_sweep.cells(config)

  def test_smoke_writes_table_plot_and_resumes(self):
    config = sweep_config.get_config('smoke')
    with tempfile.TemporaryDirectory() as tmp:
      rows = sweep.launch(config, tmp)
      self.assertLen(rows, 4)
      for name in ('table.md', 'table.csv', 'table.json', 'plot.png', 'plot_mlp.png'):
        self.assertGreater(os.path.getsize(os.path.join(tmp, name)), 0, name)
      for row in rows:
        self.assertBetween(row['test_accuracy'], 0.0, 1.0)
        self.assertGreater(row['mean_mse'], 0.0)
      # At p = 0 DIA has no masks to optimise: it is IG, to the last bit.
      by_cell = {(r['rate'], r['attack']): r for r in rows}
      self.assertEqual(by_cell[(0.0, 'ig')]['mean_mse'], by_cell[(0.0, 'dia')]['mean_mse'])
      stamps = {c: os.path.getmtime(os.path.join(tmp, c, 'metrics.json'))
                for c in os.listdir(tmp) if c.startswith('dia.')}
      again = sweep.launch(config, tmp)  # resume: every cell is read back
      self.assertEqual([r['mean_mse'] for r in again], [r['mean_mse'] for r in rows])
      for cell, stamp in stamps.items():
        self.assertEqual(os.path.getmtime(os.path.join(tmp, cell, 'metrics.json')), stamp)


if __name__ == '__main__':
  absltest.main()
