"""Tests for dlg_jax.sweeps.dropout with configs/dropout_sweep.py (and configs/dia.py, its attacks)."""

import json
import os
import tempfile

from absl.testing import absltest

from configs import dia as dia_config
from configs import dropout_sweep as sweep_config
from dlg_jax import runner
from dlg_jax import sweeps
from dlg_jax.sweeps import dropout


class DiaConfigTest(absltest.TestCase):

  def test_smoke_runs_dia_with_private_masks(self):
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(dia_config.get_config('smoke'), tmp)
      with open(os.path.join(tmp, 'config.json')) as f:
        written = json.load(f)
    self.assertEqual(written['attack']['name'], 'dia')
    self.assertFalse(written['client']['reveal_masks'])
    self.assertEqual(written['model']['dropout_rate'], 0.25)
    self.assertEqual(record['summary']['num_victims'], 2)


class DropoutSweepTest(absltest.TestCase):

  def test_cells_cover_the_grid_and_reveal_masks_only_to_wiig(self):
    config = sweep_config.get_config()
    cells = dropout.cells(config)
    self.assertLen(cells, 3 * 4 * 3 + 4 * 4)
    for cell in cells:
      self.assertEqual(cell.config.client.reveal_masks,
                       cell.labels['attack'] in ('wiig', 'wiig_lbfgs'))
      self.assertEqual(cell.config.model.dropout_rate, cell.labels['rate'])
      self.assertEqual(sorted(cell.config), ['attack', 'client', 'data', 'model', 'seed'])
    zheng = [c for c in cells if c.labels['group'] == 'zheng']
    self.assertEqual({c.labels['model'] for c in zheng}, {'lenet'})
    self.assertEqual({c.config.attack.name for c in zheng}, {'dlg', 'idlg', 'dia', 'wiig'})
    self.assertFalse(config.client.reveal_masks)  # the sweep's own config is untouched

  def test_bad_grid_values_are_named(self):
    config = sweep_config.get_config()
    config.groups.dia.rates = (0.0, 1.0)
    with self.assertRaisesRegex(ValueError, r'rate 1.0 is outside \[0, 1\)'):
      dropout.cells(config)
    config = sweep_config.get_config()
    config.groups.dia.attacks = ('ig', 'dia2')
    with self.assertRaisesRegex(ValueError, "attack 'dia2'"):
      dropout.cells(config)
    config = sweep_config.get_config()
    config.groups.dia.models = ('mlp', 'vgg')
    with self.assertRaisesRegex(ValueError, "model 'vgg'"):
      dropout.cells(config)

  def test_smoke_writes_table_plot_and_resumes(self):
    config = sweep_config.get_config('smoke')
    with tempfile.TemporaryDirectory() as tmp:
      rows = sweeps.launch(config, tmp)
      self.assertEqual([(r['model'], r['rate'], r['attack']) for r in rows],
                       [('mlp', 0.0, 'ig'), ('mlp', 0.0, 'dia'), ('mlp', 0.25, 'ig'),
                        ('mlp', 0.25, 'dia')])
      for name in ('table.md', 'table.csv', 'table.json', 'plot.png', 'plot_mlp.png'):
        self.assertGreater(os.path.getsize(os.path.join(tmp, name)), 0, name)
      with open(os.path.join(tmp, 'table.md'), encoding='utf-8') as f:
        self.assertEqual(f.readline().strip('|\n ').split(' | '), list(dropout.COLUMNS))
      for row in rows:
        self.assertBetween(row['test_accuracy'], 0.0, 1.0)
        self.assertGreater(row['mean_mse'], 0.0)
      # One training per (model, rate), shared by that rate's attacks.
      self.assertEqual(sorted(os.listdir(os.path.join(tmp, 'utility'))),
                       ['mlp-none-p0.25.json', 'mlp-none-p0.json'])
      # At p = 0 DIA has no masks to optimise: it is IG, to the last bit.
      by_cell = {(r['rate'], r['attack']): r for r in rows}
      self.assertEqual(by_cell[(0.0, 'ig')]['mean_mse'], by_cell[(0.0, 'dia')]['mean_mse'])
      stamps = {c: os.path.getmtime(os.path.join(tmp, c, 'metrics.json'))
                for c in os.listdir(tmp) if c.startswith('dia.')}
      again = sweeps.launch(config, tmp)  # resume: every cell is read back
      self.assertEqual(again, rows)
      for cell, stamp in stamps.items():
        self.assertEqual(os.path.getmtime(os.path.join(tmp, cell, 'metrics.json')), stamp)


if __name__ == '__main__':
  absltest.main()
