"""Victim data: offline photos, user npz files, image folders, IDX files, TFDS."""

import gzip
import os
import shutil
import tempfile

from absl.testing import absltest
import numpy as np
from PIL import Image

from dlg_jax import data


class PhotosTest(absltest.TestCase):

  def test_sixteen_distinct_real_photos_deterministic(self):
    a = data.load({'name': 'photos', 'size': 32, 'channels': 3}, 16)
    b = data.load({'name': 'photos', 'size': 32, 'channels': 3}, 16)
    self.assertEqual(a.images.shape, (16, 32, 32, 3))
    self.assertEqual(a.images.dtype, np.float32)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, np.arange(16))
    self.assertEqual(len(set(a.names)), 16)
    self.assertGreaterEqual(a.images.min(), 0.0)
    self.assertLessEqual(a.images.max(), 1.0)
    flat = a.images.reshape(16, -1)
    distances = np.linalg.norm(flat[:, None] - flat[None], axis=-1) + np.eye(16) * 1e9
    self.assertGreater(distances.min(), 1.0)  # no two photos alike
    # Real photographs, not noise: neighbouring pixels are strongly correlated.
    dx = np.abs(np.diff(a.images, axis=2)).mean()
    self.assertLess(dx, 0.15)

  def test_more_victims_take_further_crops_then_a_clear_error(self):
    many = data.load({'name': 'photos', 'size': 28, 'channels': 1}, 40)
    self.assertEqual(many.images.shape, (40, 28, 28, 1))
    self.assertEqual(many.labels[16], 0)
    with self.assertRaisesRegex(ValueError, 'at most 80'):
      data.load({'name': 'photos', 'size': 32, 'channels': 3}, 81)

  def test_bad_names_and_values(self):
    with self.assertRaisesRegex(ValueError, r"unknown data set 'cifar11'; choose one of \[.*'idx'"):
      data.load({'name': 'cifar11', 'size': 32, 'channels': 3}, 1)
    with self.assertRaisesRegex(ValueError, 'channels'):
      data.load({'name': 'photos', 'size': 32, 'channels': 2}, 1)


class FileSourcesTest(absltest.TestCase):

  def test_npz_grey_and_colour(self):
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
      for shape in ((5, 20, 20), (5, 40, 40, 3)):
        path = os.path.join(tmp, f'{len(shape)}.npz')
        np.savez(path, images=rng.integers(0, 256, shape, dtype=np.uint8),
                 labels=np.array([0, 3, 1, 2, 3]))
        ds = data.load({'name': 'npz', 'path': path, 'size': 32, 'channels': 3}, 4)
        self.assertEqual(ds.images.shape, (4, 32, 32, 3))
        self.assertEqual(ds.num_classes, 4)
        np.testing.assert_array_equal(ds.labels, [0, 3, 1, 2])
      with self.assertRaisesRegex(ValueError, 'has 5 images'):
        data.load({'name': 'npz', 'path': path, 'size': 32, 'channels': 3}, 6)
      bad = os.path.join(tmp, 'bad.npz')
      np.savez(bad, x=np.zeros(3))
      with self.assertRaisesRegex(ValueError, 'lacks'):
        data.load({'name': 'npz', 'path': bad, 'size': 32, 'channels': 3}, 1)
    with self.assertRaisesRegex(FileNotFoundError, 'is not a file'):
      data.load({'name': 'npz', 'path': '/nonexistent.npz', 'size': 32, 'channels': 3}, 1)

  def test_folder_labels_from_subfolders(self):
    with tempfile.TemporaryDirectory() as tmp:
      for cls, colour in (('cat', (255, 0, 0)), ('dog', (0, 0, 255))):
        os.makedirs(os.path.join(tmp, cls))
        for i in range(2):
          Image.new('RGB', (40, 30), colour).save(os.path.join(tmp, cls, f'{i}.png'))
      ds = data.load({'name': 'folder', 'path': tmp, 'size': 32, 'channels': 3}, 4)
      np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1])
      np.testing.assert_allclose(ds.images[0, 5, 5], [1, 0, 0], atol=1e-6)
      np.testing.assert_allclose(ds.images[3, 5, 5], [0, 0, 1], atol=1e-6)


def _write_idx(path: str, array: np.ndarray) -> None:
  """An IDX file as MNIST ships it: magic 0x0000 08 ndim, big-endian dims, bytes."""
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, '>i4').tobytes()
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


class IdxTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.dir)
    rng = np.random.default_rng(0)
    self.images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    self.labels = np.array([3, 1, 4, 1, 5, 9], np.uint8)
    _write_idx(os.path.join(self.dir, 't10k-images-idx3-ubyte.gz'), self.images)
    _write_idx(os.path.join(self.dir, 't10k-labels-idx1-ubyte.gz'), self.labels)

  def _config(self, **kw):
    return {'name': 'idx', 'path': self.dir, 'size': 28, 'channels': 1, 'split': 'test', **kw}

  def test_reads_pixels_exactly_and_chooses_victims(self):
    ds = data.load(self._config(), 4)
    np.testing.assert_array_equal(ds.images[..., 0], self.images[:4] / np.float32(255))
    np.testing.assert_array_equal(ds.labels, self.labels[:4])
    self.assertEqual(ds.num_classes, 10)
    self.assertEqual(ds.names[1], f'{os.path.basename(self.dir)}/test[1]')
    ds = data.load(self._config(indices=(5, 0)), 2)
    np.testing.assert_array_equal(ds.labels, [9, 3])
    a = data.load(self._config(sample_seed=7), 3)
    b = data.load(self._config(sample_seed=7), 3)
    self.assertEqual(a.names, b.names)
    self.assertLen(set(a.names), 3)
    rgb = data.load(self._config(size=32, channels=3), 1)
    self.assertEqual(rgb.images.shape, (1, 32, 32, 3))

  def test_clear_errors(self):
    with self.assertRaisesRegex(FileNotFoundError, 'train-images-idx3-ubyte'):
      data.load(self._config(split='train'), 1)
    with self.assertRaisesRegex(ValueError, 'data.split'):
      data.load(self._config(split='validation'), 1)
    with self.assertRaisesRegex(ValueError, 'the split has 6 images; the run needs 7'):
      data.load(self._config(), 7)
    with self.assertRaisesRegex(ValueError, r'data.indices must lie in \[0, 6\)'):
      data.load(self._config(indices=(0, 6)), 2)
    with open(os.path.join(self.dir, 't10k-images-idx3-ubyte.gz'), 'wb') as f:
      f.write(gzip.compress(b'\x00\x00\x08\x03' + np.asarray([6, 28, 28], '>i4').tobytes()))
    with self.assertRaisesRegex(ValueError, 'truncated'):
      data.load(self._config(), 1)


class TfdsTest(absltest.TestCase):
  """tensorflow-datasets read through `tfds.data_source` (no TensorFlow, no network)."""

  def setUp(self):
    super().setUp()
    try:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    except ImportError:
      self.skipTest('tensorflow-datasets is not installed (pip install -r requirements.txt)')
    self.tfds = tfds
    self.dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.dir)

  def test_mock_data_source(self):
    config = {'name': 'cifar10', 'data_dir': self.dir, 'size': 16, 'channels': 3,
              'split': 'test', 'sample_seed': 0}
    with self.tfds.testing.mock_data(num_examples=8):
      ds = data.load(config, 5)
      again = data.load(config, 5)
    self.assertEqual(ds.images.shape, (5, 16, 16, 3))
    self.assertEqual(ds.images.dtype, np.float32)
    self.assertEqual(ds.num_classes, 10)
    self.assertTrue(np.all((ds.labels >= 0) & (ds.labels < 10)))
    self.assertTrue(ds.names[0].startswith('cifar10/test['))
    self.assertEqual(ds.names, again.names)
    np.testing.assert_array_equal(ds.images, again.images)

  def test_not_prepared_says_how_to_prepare(self):
    with self.assertRaisesRegex(FileNotFoundError,
                                'tfds build fashion_mnist --file_format=array_record'):
      data.load({'name': 'fashion_mnist', 'data_dir': self.dir, 'size': 28, 'channels': 1,
                 'split': 'test'}, 2)
    with self.assertRaisesRegex(FileNotFoundError, 'is not a folder'):
      data.load({'name': 'mnist', 'data_dir': os.path.join(self.dir, 'nope'), 'size': 28,
                 'channels': 1}, 2)
    with self.assertRaisesRegex(ValueError, "unknown data set 'imagenet3'"):
      data.load({'name': 'imagenet3', 'size': 32, 'channels': 3}, 1)


if __name__ == '__main__':
  absltest.main()
