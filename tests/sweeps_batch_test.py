"""Tests for dlg_jax.sweeps.batch with configs/batch.py."""

import json
import os
import tempfile

from absl.testing import absltest

from configs import batch as batch_config
from dlg_jax import sweeps
from dlg_jax.sweeps import batch


class BatchSweepTest(absltest.TestCase):

  def test_cells_split_the_same_images_into_batches(self):
    config = batch_config.get_config()
    cells = batch.cells(config)
    self.assertEqual([c.name for c in cells], ['B=1', 'B=2', 'B=4', 'B=8'])
    for cell in cells:
      b = cell.labels['batch_size']
      self.assertEqual((cell.config.client.batch_size, cell.config.data.num_victims),
                       (b, config.total_images // b))
      for field in batch.SWEEP_FIELDS:
        self.assertNotIn(field, cell.config)
    self.assertEqual(config.client.batch_size, 1)  # the sweep's own config is untouched

  def test_a_batch_size_must_divide_the_images(self):
    config = batch_config.get_config()
    config.batch_sizes = (1, 3)
    with self.assertRaisesRegex(ValueError, 'dividing total_images=16, got 3'):
      batch.cells(config)

  def test_smoke_writes_a_table_per_batch_size(self):
    config = batch_config.get_config('smoke')
    with tempfile.TemporaryDirectory() as tmp:
      rows = sweeps.launch(config, tmp)  # what launch.py does with config.sweep
      self.assertEqual([r['batch_size'] for r in rows], list(config.batch_sizes))
      for row in rows:
        self.assertEqual(row['label_accuracy'], 1.0)
      with open(os.path.join(tmp, 'table.md')) as f:
        self.assertEqual(f.readline().strip('|\n ').split(' | '), list(batch.COLUMNS))
      self.assertGreater(os.path.getsize(os.path.join(tmp, 'psnr_by_batch_size.png')), 0)
      with open(os.path.join(tmp, f'B={config.batch_sizes[-1]}', 'config.json')) as f:
        self.assertEqual(json.load(f)['client']['batch_size'], config.batch_sizes[-1])


if __name__ == '__main__':
  absltest.main()
