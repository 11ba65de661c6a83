"""Tests for launch.py: a :smoke run writes every file; bad flags, configs and fields end in one line."""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import jax
import numpy as np


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LaunchTest(absltest.TestCase):

  def test_smoke_run_writes_every_file(self):
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or '',
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5', PYTHONPATH=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
      workdir = os.path.join(tmp, 'run')
      proc = subprocess.run(
          [sys.executable, 'launch.py', '--config=configs/idlg.py:smoke', f'--workdir={workdir}'],
          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
      self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
      for name in ('config.json', 'metrics.json', 'reconstructions.npz', 'grid.png', 'curves.png'):
        self.assertTrue(os.path.getsize(os.path.join(workdir, name)) > 0, name)
      with open(os.path.join(workdir, 'metrics.json')) as f:
        record = json.load(f)
      self.assertEqual(set(record['summary']), {'mean_mse', 'mean_psnr', 'mean_ssim',
                                                'label_accuracy', 'num_victims', 'num_scored',
                                                'num_diverged', 'seconds',
                                                'mean_exact_recovered', 'exact_recall'})
      self.assertEqual(record['summary']['num_victims'], 2)
      self.assertEqual(record['summary']['label_accuracy'], 1.0)
      for victim in record['victims']:
        for key in ('mse', 'psnr', 'ssim', 'label_correct', 'diverged', 'iterations'):
          self.assertIn(key, victim)
      with np.load(os.path.join(workdir, 'reconstructions.npz')) as f:
        self.assertEqual(f['reconstructions'].shape, (2, 1, 32, 32, 3))
        self.assertEqual(f['ground_truth'].shape, (2, 1, 32, 32, 3))
      with open(os.path.join(workdir, 'config.json')) as f:
        self.assertEqual(json.load(f)['attack']['name'], 'idlg')
      self.assertIn('mean PSNR', proc.stdout)
      # One line per attack chunk (smoke: 20 steps in chunks of 10), the last
      # one's PSNR equal to the report's (the same best restart).
      with open(os.path.join(workdir, 'progress.jsonl')) as f:
        lines = [json.loads(line) for line in f]
      self.assertEqual([line['iteration'] for line in lines], [10, 20])
      self.assertEqual(lines[-1]['victims'], [0, 1])
      np.testing.assert_allclose(lines[-1]['psnr'], [v['psnr'] for v in record['victims']],
                                 atol=1e-3)

  def test_bad_config_exits_with_one_line(self):
    proc = subprocess.run(
        [sys.executable, 'launch.py', '--config=configs/idlg.py:smoke', '--config.model.name=vgg',
         '--workdir=/tmp/dlg_jax_bad_run'],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
        timeout=300)
    self.assertEqual(proc.returncode, 2)
    self.assertIn("error: unknown model 'vgg'", proc.stderr)
    self.assertNotIn('Traceback', proc.stderr)

  def test_bad_flags_and_config_files_exit_with_one_line(self):
    # Errors raised while absl parses the flags and loads the config file.
    cases = {
        'no such field': (['--config=configs/idlg.py:smoke', '--config.model.widht=16'],
                          "--config.model.widht: the config has no field 'widht'"),
        'model field not in the file': (['--config=configs/ig.py', '--config.model.width=16'],
                                        '--config.model.options=width=VALUE'),
        'bad model option': (['--config=configs/idlg.py:smoke', '--config.model.options=widht=8'],
                             "model 'lenet' has no option(s) ['widht']"),
        'bad :arg': (['--config=configs/idlg.py:smok'], "unknown config argument 'smok'"),
        'missing file': (['--config=configs/nope.py'],
                         "cannot load the config file 'configs/nope.py' (no such file)"),
        'bad value': (['--config=configs/idlg.py', '--config.attack.steps=many'],
                      'flag --config.attack.steps=many'),
        # The attack's own check runs before any data is read (experiment.check).
        'bad attack field': (['--config=configs/idlg.py', '--config.attack.linesearch=zom'],
                             'attack.linesearch must be one of'),
        'bad client field': (['--config=configs/idlg.py', '--config.client.protocol=fedprox'],
                             'client.protocol must be one of'),
    }
    for name, (args, message) in cases.items():
      with self.subTest(name):
        proc = subprocess.run(
            [sys.executable, 'launch.py', *args, '--workdir=/tmp/dlg_jax_bad_run'],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
            timeout=300)
        self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
        self.assertIn(message, proc.stderr)
        self.assertTrue(proc.stderr.startswith('error: '), proc.stderr[-2000:])
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr[-2000:])


if __name__ == '__main__':
  absltest.main()
