"""End to end: configs, clear errors, launch.py on :smoke, and metrics."""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from configs import dlg as dlg_config
from configs import idlg as idlg_config
from configs import ig as ig_config
from dlg_jax import experiment
from dlg_jax import html_report
from dlg_jax import metrics
from dlg_jax import runner
from dlg_jax.attacks import inverting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BadConfigTest(absltest.TestCase):

  def _run(self, **overrides):
    config = idlg_config.get_config('smoke')
    for path, value in overrides.items():
      section, field = path.split('.')
      config[section][field] = value
    with tempfile.TemporaryDirectory() as tmp:
      runner.run(config, tmp)

  def test_each_bad_value_gives_one_clear_error(self):
    cases = (
        ({'model.name': 'lenet7'}, r"unknown model 'lenet7'; choose one of \[.*'lenet'"),
        ({'attack.name': 'dlgg'}, r"unknown attack 'dlgg'; choose one of \[.*'dlg', 'idlg'"),
        ({'data.name': 'imagenet3'}, r"unknown data set 'imagenet3'; choose one of"),
        ({'data.num_victims': 0}, r'data.num_victims must be a positive integer'),
        ({'client.batch_size': -1}, r'client.batch_size must be a positive integer'),
        ({'data.name': 'npz', 'data.path': '/no/such.npz'}, r'is not a file'),
    )
    for overrides, pattern in cases:
      with self.subTest(**{k.replace('.', '_'): v for k, v in overrides.items()}):
        with self.assertRaisesRegex((ValueError, FileNotFoundError), pattern):
          self._run(**overrides)

  def test_model_option_errors(self):
    config = idlg_config.get_config('smoke')
    config.model.dropout_rate = 1.5
    with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(ValueError, r'\[0, 1\)'):
      runner.run(config, tmp)
    config = idlg_config.get_config('smoke')
    config.model.depth = 3
    with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(ValueError, 'no option'):
      runner.run(config, tmp)

  def test_config_argument(self):
    self.assertEqual(dlg_config.get_config().attack.labels, 'optimize')
    with self.assertRaisesRegex(ValueError, 'smoke'):
      dlg_config.get_config('huge')


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
                                                'label_accuracy', 'num_victims',
                                                'num_diverged', 'seconds'})
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


class InProcessSmokeTest(absltest.TestCase):

  def test_ig_smoke(self):
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(ig_config.get_config('smoke'), tmp)
      self.assertEqual(record['summary']['num_victims'], 2)
      self.assertEqual(record['summary']['label_accuracy'], 1.0)
      with open(os.path.join(tmp, 'config.json')) as f:
        config = json.load(f)
      self.assertEqual((config['attack']['name'], config['attack']['labels'],
                        config['client']['train']), ('ig', 'idlg', True))


  def test_ig_lenet_variant_is_a_valid_ig_config(self):
    # The tuned LeNet run (plateau schedule, layer weights) must pass the
    # attack's own validation, and stay on the model the docstring measures.
    config = ig_config.get_config('lenet')
    inverting.check_config(config.attack)
    self.assertEqual((config.model.name, config.data.num_victims, config.attack.schedule),
                     ('lenet', 16, 'plateau'))

  def test_model_options_reach_the_threat_model_sentence(self):
    config = ig_config.get_config()
    self.assertEqual(config.model.options, '')
    config.model.options = 'width=16'
    experiment.check(config)
    self.assertIn('<b>resnet18</b> (width=16)', html_report.threat_model(config.to_dict())[0])
    config.model.options = 'widht=16'
    with self.assertRaisesRegex(ValueError, r"has no option\(s\) \['widht'\]"):
      experiment.check(config)

  def test_ig_eval_variant_switches_both_sides_to_running_statistics(self):
    # A client in eval mode attacked by a train-mode attacker (or the reverse)
    # would be a third threat model; ':eval' must switch both, on ResNet-18.
    config = ig_config.get_config('eval')
    inverting.check_config(config.attack)
    self.assertEqual((config.model.name, config.client.train, config.attack.train),
                     ('resnet18', False, False))
    with self.assertRaisesRegex(ValueError, '":lenet", ":eval"'):
      ig_config.get_config('evals')


class MetricsTest(absltest.TestCase):

  def test_identical_and_different_images(self):
    x = jax.random.uniform(jax.random.key(0), (3, 32, 32, 3))
    np.testing.assert_allclose(metrics.mse(x, x), 0.0)
    np.testing.assert_allclose(metrics.ssim(x, x), 1.0, atol=1e-5)
    self.assertTrue(np.all(np.isinf(metrics.psnr(x, x))))
    y = jnp.clip(x + 0.1, 0, 1)
    mse = metrics.mse(x, y)
    np.testing.assert_allclose(metrics.psnr(x, y), -10 * np.log10(mse), rtol=1e-5)


if __name__ == '__main__':
  absltest.main()
