"""dlg_jax.audit: the Python API on a model of one's own, and its example."""

import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import jax
import numpy as np

from configs import idlg as idlg_config
import dlg_jax
from dlg_jax import data
from dlg_jax import models
from dlg_jax import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
  return dict(os.environ, PYTHONPATH=ROOT,
              JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or '',
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5')


class AuditTest(absltest.TestCase):

  def test_same_victims_as_the_runner_on_the_same_config(self):
    # The API and launch.py run the same hops: same config, same numbers.
    config = idlg_config.get_config('smoke')
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(config, tmp)
    photos = data.load_photos(2, size=32, channels=3)
    model = models.build(config.model, input_shape=(32, 32, 3), num_classes=photos.num_classes)
    k_model = jax.random.split(jax.random.key(config.seed), 3)[0]
    found = dlg_jax.audit(model, model.init(k_model), photos.images, photos.labels,
                          attack=config.attack.to_dict(), client=config.client.to_dict(),
                          seed=config.seed, names=photos.names)
    for mine, theirs in zip(found.record['victims'], record['victims']):
      for key in ('images', 'psnr', 'mse', 'ssim', 'recovered_labels', 'iterations'):
        self.assertEqual(mine[key], theirs[key], key)
    self.assertEqual(found.result.images.shape, (2, 1, 32, 32, 3))
    np.testing.assert_array_equal(found.scores.psnr, [v['psnr'] for v in record['victims']])
    with tempfile.TemporaryDirectory() as tmp:
      written = dlg_jax.write_report(found, tmp)
      self.assertEqual(written['summary'], found.record['summary'])
      for name in ('metrics.json', 'config.json', 'curves.json', 'grid.png', 'report.html'):
        self.assertGreater(os.path.getsize(os.path.join(tmp, name)), 0, name)

  def test_bad_input_names_the_argument(self):
    model = models.build({'name': 'lenet'}, input_shape=(32, 32, 3), num_classes=4)
    images = np.zeros((2, 32, 32, 3), np.float32)
    with self.assertRaisesRegex(dlg_jax.ConfigError, r'images must be \(N, H, W, C\)'):
      dlg_jax.audit(model, {}, images[0], np.zeros(2, np.int32))
    with self.assertRaisesRegex(dlg_jax.ConfigError, 'labels must be N = 2 integers'):
      dlg_jax.audit(model, {}, images, np.zeros(2, np.float32))
    with self.assertRaisesRegex(dlg_jax.ConfigError, 'client.batch_size=3'):
      dlg_jax.audit(model, {}, images, np.zeros(2, np.int32), client={'batch_size': 3})
    with self.assertRaisesRegex(ValueError, 'unknown attack'):
      dlg_jax.audit(model, {}, images, np.zeros(2, np.int32), attack='dlgg')

  def test_import_lists_the_api_and_parses_no_flags(self):
    code = ('import dlg_jax, pydoc; from absl import flags; '
            'assert not flags.FLAGS.is_parsed(); print(pydoc.render_doc(dlg_jax))')
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
    for name in ('audit(', 'write_report(', 'wrap('):
      self.assertIn(name, proc.stdout)

  def test_example_audits_its_own_module_with_ig_and_dlg(self):
    with tempfile.TemporaryDirectory() as tmp:
      proc = subprocess.run(
          [sys.executable, '-m', 'examples.audit_own_model', '--steps=10', '--victims=2',
           f'--workdir={tmp}'], cwd=ROOT, env=_env(), capture_output=True, text=True,
          timeout=600)
      self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
      for attack in ('ig', 'dlg'):
        self.assertRegex(proc.stdout, rf'{attack}: mean PSNR -?\d+\.\d\d dB')
        self.assertTrue(os.path.exists(os.path.join(tmp, attack, 'report.html')), attack)


if __name__ == '__main__':
  absltest.main()
