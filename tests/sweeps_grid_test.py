"""Tests for dlg_jax.sweeps.grid (cells, running, resuming, tables, plots) and launch."""

import csv
import json
import os
import tempfile

from absl.testing import absltest
import ml_collections

from configs import idlg as idlg_config
from dlg_jax import report
from dlg_jax import sweeps
from dlg_jax.sweeps import grid


def _tiny_config(defenses=()):
  config = idlg_config.get_config('smoke')
  config.data.num_victims = 1
  config.attack.steps = 10
  config.attack.restarts = 1
  config.client.defenses = list(defenses)
  return config


def _refuse(config, workdir):
  raise AssertionError(f'a finished cell was run again: {workdir}')


def _fake_runner(ran):
  """A runner that writes a metrics.json whose PSNR is the config's seed."""
  def runner(config, workdir):
    ran.append(os.path.basename(workdir))
    os.makedirs(workdir)
    report.write_json(os.path.join(workdir, 'metrics.json'),
                      {'summary': {'mean_psnr': float(config.seed)}, 'victims': []})
  return runner


class CellConfigTest(absltest.TestCase):

  def test_a_deep_unlocked_copy_less_the_sweep_fields(self):
    sweep = ml_collections.ConfigDict({
        'sweep': 'x', 'grid': {'a': [1]}, 'seed': 3,
        'client': {'defenses': [{'name': 'prune', 'sparsity': 0.5}], 'batch_size': 1},
        'attack': {'name': 'idlg', 'steps': 10}})
    sweep.lock()
    cell = grid.cell_config(sweep, drop=('sweep', 'grid', 'absent'),
                            attack=ml_collections.ConfigDict({'name': 'ig'}))
    self.assertIsInstance(cell, ml_collections.ConfigDict)
    self.assertEqual(sorted(cell), ['attack', 'client', 'seed'])
    self.assertEqual(cell.attack.to_dict(), {'name': 'ig'})  # replaced, not merged
    cell.client.batch_size = 4
    cell.client.defenses[0]['sparsity'] = 0.9
    cell.model = {'name': 'lenet'}  # unlocked: new fields are fine
    self.assertEqual(sweep.client.batch_size, 1)
    self.assertEqual(sweep.client.defenses[0]['sparsity'], 0.5)

  def test_plain_mappings_work_too(self):
    cell = grid.cell_config({'sweep': 'x', 'data': {'size': 8}}, drop=('sweep',), seed=1)
    self.assertEqual(cell.to_dict(), {'data': {'size': 8}, 'seed': 1})


class RunTest(absltest.TestCase):

  def test_runs_cells_then_resumes_without_running(self):
    cells = [
        grid.Cell('none', {'defense': 'none', 'strength': None}, _tiny_config()),
        grid.Cell('gaussian_1e-1', {'defense': 'gaussian', 'strength': 0.1},
                  _tiny_config([{'name': 'gaussian', 'variance': 0.1}])),
    ]
    with tempfile.TemporaryDirectory() as tmp:
      rows = grid.run(cells, tmp, extra=lambda cell, record: {'victims': len(record['victims'])})
      self.assertEqual([r['defense'] for r in rows], ['none', 'gaussian'])
      for row in rows:
        self.assertEqual(row['num_victims'], 1)
        self.assertEqual(row['victims'], 1)
        self.assertIn('mean_psnr', row)
      # The noisy gradient cannot be matched as closely as the clean one.
      self.assertGreater(rows[0]['mean_psnr'], rows[1]['mean_psnr'])
      with open(os.path.join(tmp, 'gaussian_1e-1', 'config.json')) as f:
        self.assertEqual(json.load(f)['client']['defenses'],
                         [{'name': 'gaussian', 'variance': 0.1}])

      mtimes = [os.path.getmtime(os.path.join(tmp, c.name, 'metrics.json')) for c in cells]
      again = grid.run(cells, tmp, runner=_refuse,
                       extra=lambda cell, record: {'victims': len(record['victims'])})
      self.assertEqual(again, rows)
      self.assertEqual(
          mtimes, [os.path.getmtime(os.path.join(tmp, c.name, 'metrics.json')) for c in cells])

  def test_only_unfinished_cells_run(self):
    ran = []
    cells = [grid.Cell(f'seed{s}', {'seed': s}, _tiny_config()) for s in range(3)]
    for s, cell in enumerate(cells):
      cell.config.seed = s
    with tempfile.TemporaryDirectory() as tmp:
      os.makedirs(os.path.join(tmp, 'seed1'))
      report.write_json(os.path.join(tmp, 'seed1', 'metrics.json'),
                        {'summary': {'mean_psnr': 99.0, 'epsilon': float('inf')}})
      rows = grid.run(cells, tmp, runner=_fake_runner(ran))
    self.assertEqual(ran, ['seed0', 'seed2'])
    self.assertEqual([r['mean_psnr'] for r in rows], [0.0, 99.0, 2.0])
    self.assertIsNone(rows[1]['epsilon'])  # inf was written as null

  def test_a_runner_without_metrics_is_an_error(self):
    cells = [grid.Cell('a', {}, _tiny_config())]
    with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(RuntimeError,
                                                                      'without writing'):
      grid.run(cells, tmp, runner=lambda config, workdir: None)

  def test_bad_cells_raise(self):
    config = _tiny_config()
    for cells, pattern in (
        ([grid.Cell('a/b', {}, config)], 'safe directory name'),
        ([grid.Cell('.hidden', {}, config)], 'safe directory name'),
        ([grid.Cell('a', {}, config), grid.Cell('a', {}, config)], 'unique'),
    ):
      with self.subTest(pattern=pattern, name=cells[0].name):
        with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(ValueError, pattern):
          grid.run(cells, tmp, runner=_refuse)


class LaunchTest(absltest.TestCase):

  def test_registry_holds_the_four_sweeps(self):
    self.assertEqual(sorted(sweeps.SWEEPS), ['batch', 'defenses', 'dropout', 'models_study'])
    for run in sweeps.SWEEPS.values():
      self.assertTrue(callable(run))

  def test_unknown_sweep_lists_choices(self):
    with self.assertRaisesRegex(ValueError, r"unknown sweep 'nope' in config.sweep; choose one of"):
      sweeps.launch({'sweep': 'nope'}, '/tmp/unused')


class TableAndPlotTest(absltest.TestCase):

  ROWS = [
      {'defense': 'none', 'strength': None, 'mean_psnr': 48.6123, 'accuracy': 0.97},
      {'defense': 'gaussian', 'strength': 1e-4, 'mean_psnr': 30.0, 'accuracy': 0.96},
      {'defense': 'gaussian', 'strength': 1e-2, 'mean_psnr': 9.5, 'accuracy': float('nan')},
      {'defense': 'gaussian', 'strength': 1e-3, 'mean_psnr': 20.0, 'accuracy': 0.9},
  ]

  def test_table_files(self):
    columns = ('defense', 'strength', 'mean_psnr', 'accuracy', 'epsilon')
    with tempfile.TemporaryDirectory() as tmp:
      markdown = grid.write_table(self.ROWS, tmp, columns, name='t')
      with open(os.path.join(tmp, 't.md'), encoding='utf-8') as f:
        self.assertEqual(f.read(), markdown)
      md = markdown.splitlines()
      self.assertEqual(md[0], '| defense | strength | mean_psnr | accuracy | epsilon |')
      self.assertEqual(md[2], '| none | — | 48.61 | 0.97 | — |')
      self.assertEqual(md[4], '| gaussian | 0.01 | 9.5 | — | — |')
      self.assertLen(md, 2 + len(self.ROWS))
      with open(os.path.join(tmp, 't.csv'), encoding='utf-8') as f:
        table = list(csv.reader(f))
      self.assertEqual(table[0], list(columns))
      self.assertEqual(table[1], ['none', '—', '48.6123', '0.97', '—'])
      with open(os.path.join(tmp, 't.json')) as f:
        back = json.load(f)
      self.assertEqual(back[0], self.ROWS[0])
      self.assertIsNone(back[2]['accuracy'])
      self.assertFalse([n for n in os.listdir(tmp) if n.endswith('.tmp')])

  def test_plot_is_a_png(self):
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'plots', 'tradeoff.png')
      grid.plot_lines(self.ROWS, path, x='strength', y='mean_psnr', line='defense',
                      title='PSNR vs noise', logx=True)
      grid.plot_lines(self.ROWS, os.path.join(tmp, 'two.png'), x='accuracy', y='mean_psnr',
                      line=('defense', 'strength'), title='pairs')
      for p in (path, os.path.join(tmp, 'two.png')):
        with open(p, 'rb') as f:
          self.assertEqual(f.read(8), b'\x89PNG\r\n\x1a\n')

  def test_format_value(self):
    self.assertEqual([grid.format_value(v) for v in (None, '', 1e-4, 48.612, 'fp16', 3, True)],
                     ['—', '—', '0.0001', '48.61', 'fp16', '3', 'True'])


if __name__ == '__main__':
  absltest.main()
