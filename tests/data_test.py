"""Victim data: offline photos, user npz files and image folders."""

import os
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
    with self.assertRaisesRegex(ValueError, "choose one of \\['folder', 'npz', 'photos'\\]"):
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


if __name__ == '__main__':
  absltest.main()
