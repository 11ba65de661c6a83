"""Tests for configs/defenses.py and dlg_jax.sweeps.defenses (grid, ε, :smoke end to end)."""

import json
import math
import os
import tempfile

from absl.testing import absltest
import dp_accounting
from dp_accounting import rdp

from configs import defenses as defenses_config
from dlg_jax import sweeps
from dlg_jax.client import defenses as defenses_lib
from dlg_jax.sweeps import defenses
from dlg_jax.sweeps import grid
from dlg_jax.sweeps import utility


def _rdp_epsilon(z, q, steps, delta):
  acc = rdp.RdpAccountant()
  acc.compose(dp_accounting.SelfComposedDpEvent(
      dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps))
  return acc.get_epsilon(delta)


class GridTest(absltest.TestCase):

  def test_full_grid_builds_valid_chains(self):
    config = defenses_config.get_config()
    points = defenses.grid_points(config.grid.to_dict())
    self.assertEqual(points[0], ('none', None))
    self.assertLen(points, 1 + 4 + 4 + 3 + 5 + 3)
    names = [grid.slug(*p) for p in points]
    self.assertLen(set(names), len(names))
    for defense, strength in points:
      specs = defenses.specs_for(defense, strength, config.dp.clip_norm)
      self.assertEqual(defenses_lib.build(specs).describe(), specs)
    cells = defenses.cells(config)
    self.assertLen(cells, 2 * len(points))
    for cell in cells:
      self.assertEqual(cell.config.attack.name, cell.labels['attack'])
      for field in defenses.SWEEP_FIELDS:
        self.assertNotIn(field, cell.config)
    dp_cell = next(c for c in cells if c.labels['defense'] == 'dp_sgd')
    self.assertAlmostEqual(dp_cell.config.client.accounting.sampling_rate, 64 / 1347)
    self.assertEqual(dp_cell.config.client.accounting.steps, 1000)

  def test_laplacian_matches_the_gaussian_variance(self):
    (spec,) = defenses.specs_for('laplacian', 1e-2)
    self.assertAlmostEqual(2 * spec['scale'] ** 2, 1e-2)

  def test_unknown_defense_lists_choices(self):
    with self.assertRaisesRegex(ValueError, r"unknown defense\(s\) \['blur'\].*'prune'"):
      defenses.grid_points({'blur': [1]})


class SmokeTest(absltest.TestCase):

  def test_smoke_writes_table_plot_and_epsilon_then_resumes(self):
    config = defenses_config.get_config('smoke')
    with tempfile.TemporaryDirectory() as tmp:
      rows = sweeps.launch(config, tmp)
      self.assertEqual([(r['defense'], r['attack']) for r in rows],
                       [('none', 'idlg'), ('dp_sgd', 'idlg')])
      for name in ('table.md', 'table.csv', 'table.json', 'tradeoff_idlg.png'):
        self.assertGreater(os.path.getsize(os.path.join(tmp, name)), 0, name)
      with open(os.path.join(tmp, 'table.md'), encoding='utf-8') as f:
        header = f.readline()
      self.assertEqual(header.strip('|\n ').split(' | '), list(defenses.COLUMNS))

      none, dp = rows
      self.assertNotIn('epsilon', none)
      for row in rows:
        self.assertBetween(row['test_accuracy'], 0.0, 1.0)
      # ε in the attack cell's metrics.json = the utility run's = dp-accounting directly.
      u = config.utility
      expected = _rdp_epsilon(1.0, u.batch_size / 1347, u.steps, u.delta)
      self.assertTrue(math.isfinite(expected))
      self.assertAlmostEqual(dp['epsilon'], expected, places=9)
      self.assertAlmostEqual(dp['train_epsilon'], expected, places=9)
      with open(os.path.join(tmp, 'idlg-dp_sgd-1', 'metrics.json')) as f:
        summary = json.load(f)['summary']
      self.assertEqual((summary['delta'], summary['dp_steps'], summary['noise_multiplier']),
                       (u.delta, u.steps, 1.0))

      self.assertEqual(sorted(os.listdir(os.path.join(tmp, 'utility'))),
                       ['lenet-dp_sgd-1-p0.json', 'lenet-none-p0.json'])
      cached = [os.path.join(tmp, 'utility', 'lenet-none-p0.json'),
                os.path.join(tmp, 'idlg-none', 'metrics.json')]
      mtimes = [os.path.getmtime(p) for p in cached]
      self.assertEqual(sweeps.launch(config, tmp), rows)
      self.assertEqual([os.path.getmtime(p) for p in cached], mtimes)

  def test_no_utility_steps_leaves_the_column_empty(self):
    config = defenses_config.get_config('smoke')
    config.utility.steps = 0
    cells = defenses.cells(config)
    self.assertNotIn('accounting', cells[1].config.client)  # nothing trained, no ε to state
    self.assertIsNone(utility.measure(config, '/nonexistent', model_name='lenet',
                                      model=config.model))


if __name__ == '__main__':
  absltest.main()
