"""Tests for dlg_jax.compare on hand-made workdirs: rows, escaping, unfinished runs."""

import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import absltest

from dlg_jax import compare
from dlg_jax import report
from dlg_jax.errors import ConfigError, MissingFileError
from tests import html_report_test

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _workdir(root, name, config, summary, metrics=True):
  path = os.path.join(root, name)
  os.makedirs(path)
  report.write_json(os.path.join(path, 'config.json'), config)
  if metrics:
    report.write_json(os.path.join(path, 'metrics.json'), {'summary': summary, 'victims': []})
  return path


class CompareTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.root)
    self.summary = html_report_test.hostile_record()['summary']

  def test_hostile_runs_are_escaped_and_scored_counts_shown(self):
    config = html_report_test.hostile_config()
    old = {k: v for k, v in self.summary.items() if k != 'num_scored'}  # written before it
    runs = [_workdir(self.root, html_report_test.SCRIPT.replace('/', '_'), config, self.summary),
            _workdir(self.root, 'old', config, old)]
    out = os.path.join(self.root, 'out')
    rows = compare.compare(runs, out)
    self.assertEqual([r['scored'] for r in rows], [1, None])
    with open(os.path.join(out, 'compare.html'), encoding='utf-8') as f:
      page = f.read()
    html_report_test.assert_no_markup_from(self, page, allowed_imgs=1)  # the plot
    self.assertRegex(page, r'<img alt="compare.png" src="data:image/png;base64,[A-Za-z0-9+/=]+">')
    with open(os.path.join(out, 'compare.md')) as f:
      md = f.read().splitlines()
    self.assertIn('| scored | diverged |', md[0])
    self.assertRegex(md[2], r'\| 1 \| 1 \| 1\.5 \|$')
    self.assertRegex(md[3], r'\| — \| 1 \| 1\.5 \|$')

  def test_unfinished_or_missing_workdir_says_so(self):
    unfinished = _workdir(self.root, 'unfinished', html_report_test.hostile_config(), {},
                          metrics=False)
    with self.assertRaisesRegex(MissingFileError, 'no metrics.json: the run is unfinished'):
      compare.row(unfinished)
    with self.assertRaisesRegex(MissingFileError, 'does not exist'):
      compare.row(os.path.join(self.root, 'nowhere'))
    with self.assertRaisesRegex(MissingFileError, 'no config.json'):
      compare.row(self.root)
    self.assertTrue(issubclass(MissingFileError, ConfigError))
    self.assertTrue(issubclass(MissingFileError, FileNotFoundError))
    not_a_run = _workdir(self.root, 'not_a_run', {}, self.summary)
    with self.assertRaisesRegex(ConfigError, "not a run's record"):
      compare.row(not_a_run)

  def test_main_ends_an_unfinished_run_in_one_line(self):
    unfinished = _workdir(self.root, 'unfinished', html_report_test.hostile_config(), {},
                          metrics=False)
    proc = subprocess.run(
        [sys.executable, '-m', 'dlg_jax.compare', unfinished,
         f'--out={os.path.join(self.root, "out")}'],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
        timeout=300)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertNotIn('Traceback', proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    self.assertLen(lines, 1, proc.stderr)
    self.assertRegex(lines[0], r'^error: .* has no metrics\.json: the run is unfinished')


if __name__ == '__main__':
  absltest.main()
