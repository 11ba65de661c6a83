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
    extra = len(config.imprint_batches) + len(config.imprint_users)
    self.assertLen(cells, 3 * len(points) + extra)
    for cell in cells:
      self.assertEqual(cell.config.attack.name, cell.labels['attack'])
      for field in defenses.SWEEP_FIELDS:
        self.assertNotIn(field, cell.config)
      for section in defenses.SECTIONS:
        self.assertNotIn(section, cell.config.attack)
      malicious = cell.labels['attack'] == 'imprint'
      self.assertEqual(cell.config.server.name, 'imprint' if malicious else 'honest')
      self.assertEqual(cell.config.data.num_victims, 4 if malicious else 8)
    imprint_rows = [(c.labels['defense'], c.labels['batch_size'], c.labels['users'])
                    for c in cells if c.labels['attack'] == 'imprint'][len(points):]
    self.assertEqual(imprint_rows, [('none', 8, 1), ('none', 16, 1), ('none', 4, 2),
                                    ('none', 4, 4)])
    dp_cell = next(c for c in cells if c.labels['defense'] == 'dp_sgd')
    self.assertAlmostEqual(dp_cell.config.client.accounting.sampling_rate, 64 / 1347)
    self.assertEqual(dp_cell.config.client.accounting.steps, 1000)

  def test_laplacian_matches_the_gaussian_variance(self):
    (spec,) = defenses.specs_for('laplacian', 1e-2)
    self.assertAlmostEqual(2 * spec['scale'] ** 2, 1e-2)

  def test_entry_sections_are_checked(self):
    config = defenses_config.get_config('smoke')
    config.attacks.imprint.server.bins = 7
    config.attacks.imprint.client.defenses = []
    with self.assertRaisesRegex(ValueError, r"imprint.client may not set \['defenses'\]"):
      defenses.cells(config)
    del config.attacks.imprint.client.defenses
    config.attacks.imprint.server.binz = 7
    with self.assertRaisesRegex(ValueError, r"server has no field\(s\) \['binz'\]"):
      defenses.cells(config)

  def test_unknown_defense_lists_choices(self):
    with self.assertRaisesRegex(ValueError, r"unknown defense\(s\) \['blur'\].*'prune'"):
      defenses.grid_points({'blur': [1]})


class SmokeTest(absltest.TestCase):

  def test_smoke_writes_table_plot_and_epsilon_then_resumes(self):
    config = defenses_config.get_config('smoke')
    with tempfile.TemporaryDirectory() as tmp:
      rows = sweeps.launch(config, tmp)
      self.assertEqual([(r['defense'], r['attack'], r['batch_size'], r['users']) for r in rows],
                       [('none', 'idlg', 1, 1), ('dp_sgd', 'idlg', 1, 1),
                        ('none', 'imprint', 4, 1), ('dp_sgd', 'imprint', 4, 1),
                        ('none', 'imprint', 8, 1), ('none', 'imprint', 4, 2)])
      for name in ('table.md', 'table.csv', 'table.json', 'tradeoff_idlg.png',
                   'tradeoff_imprint.png'):
        self.assertGreater(os.path.getsize(os.path.join(tmp, name)), 0, name)
      with open(os.path.join(tmp, 'table.md'), encoding='utf-8') as f:
        header = f.readline()
      self.assertEqual(header.strip('|\n ').split(' | '), list(defenses.COLUMNS))

      none, dp = rows[:2]
      self.assertNotIn('epsilon', none)
      for row in rows:
        self.assertBetween(row['test_accuracy'], 0.0, 1.0)
      # Every run scores exact recovery: 10 iDLG iterations recover no image exactly.
      for row in rows[:2]:
        self.assertEqual((row['mean_exact_recovered'], row['exact_recall']), (0.0, 0.0))
      # The imprint rows: the undefended read-out recovers images exactly,
      # DP-SGD's noise none of them; 2 users of 4 are one batch of 8 to it.
      for row in rows[2:]:
        self.assertBetween(row['exact_recall'], 0.0, 1.0)
        self.assertAlmostEqual(row['mean_exact_recovered'],
                               row['exact_recall'] * row['batch_size'] * row['users'])
      self.assertGreater(rows[2]['exact_recall'], 0.0)
      self.assertEqual(rows[3]['exact_recall'], 0.0)
      self.assertEqual(rows[4]['mean_exact_recovered'], rows[5]['mean_exact_recovered'])
      self.assertEqual(rows[2]['test_accuracy'], none['test_accuracy'])  # one training
      with open(os.path.join(tmp, 'table.csv'), encoding='utf-8') as f:
        csv_rows = [line.rstrip('\n').split(',') for line in f][1:]
      recall = defenses.COLUMNS.index('exact_recall')
      self.assertEqual([r[recall] for r in csv_rows], [str(r['exact_recall']) for r in rows])
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
