"""Victim data: offline photos, user npz files, image folders, IDX files, TFDS."""

import gzip
import io
import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import absltest
import numpy as np
from PIL import Image

from dlg_jax import data
from dlg_jax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def _write_idx(path: str, array: np.ndarray, code: int = 0x08) -> None:
  """An IDX file as MNIST ships it: magic 0x0000 TT ndim, big-endian dims, data."""
  header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, '>i4').tobytes()
  with gzip.open(path, 'wb') as f:
    dtype = data._IDX_DTYPES[code]  # pylint: disable=protected-access
    f.write(header + array.astype(dtype).tobytes())


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


def _npz_bytes(**arrays) -> bytes:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  np.save(buffer, array)
  return buffer.getvalue()


def _png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


_GOOD_IMAGES = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
_GOOD_LABELS = np.array([0, 1, 2])
_GOOD_NPZ = _npz_bytes(images=_GOOD_IMAGES, labels=_GOOD_LABELS)


def _with_nan(images: np.ndarray) -> np.ndarray:
  images = images.astype(np.float32) / 255
  images[1, 2, 3, 0] = np.nan
  return images


# name -> (file contents, what the one-line error must say). Each file is
# refused at load by a ConfigError naming it.
_BAD_NPZ = {
    'empty': (b'', 'is empty'),
    'npy': (_npy_bytes(_GOOD_IMAGES), r'is a \.npy file \(one array'),
    'random_bytes': (np.random.default_rng(1).bytes(512), r'is not an \.npz file'),
    'truncated': (_GOOD_NPZ[:len(_GOOD_NPZ) // 2], r'corrupt or truncated \.npz'),
    'bad_crc': (_GOOD_NPZ[:200] + bytes([_GOOD_NPZ[200] ^ 0xFF]) + _GOOD_NPZ[201:],
                '"images" is corrupt or truncated'),
    'no_labels': (_npz_bytes(images=_GOOD_IMAGES), r"lacks \['labels'\]"),
    'object_images': (_npz_bytes(images=np.array([{'a': 1}, None, 3], dtype=object),
                                 labels=_GOOD_LABELS), r'array of Python objects \(pickled\)'),
    'fractional_labels': (_npz_bytes(images=_GOOD_IMAGES, labels=np.array([0, 1.5, 2])),
                          'labels must be integers.*label 1 is 1.5.*whole number such as 3.0'),
    'nan_labels': (_npz_bytes(images=_GOOD_IMAGES, labels=np.array([0, np.nan, 2])),
                   'labels must be integers.*label 1 is nan'),
    'text_labels': (_npz_bytes(images=_GOOD_IMAGES, labels=np.array(['a', 'b', 'c'])),
                    'labels must be integers.*dtype <U1'),
    'int64_wraps_int32': (_npz_bytes(images=_GOOD_IMAGES, labels=np.array([0, 2**32 + 1, 2])),
                          'label 1 is 4294967297, which does not fit int32'),
    'huge_class_count': (_npz_bytes(images=_GOOD_IMAGES, labels=np.array([0, 50_000_000, 2])),
                         '50,000,001-way classifier; at most 100,000 classes'),
    'negative_label': (_npz_bytes(images=_GOOD_IMAGES, labels=np.array([0, -1, 2])),
                       'label 1 is -1; .*cannot be negative'),
    'labels_2d': (_npz_bytes(images=_GOOD_IMAGES, labels=_GOOD_LABELS[:, None]),
                  r'flat \(N,\) array'),
    'label_count': (_npz_bytes(images=_GOOD_IMAGES, labels=_GOOD_LABELS[:2]),
                    '3 images but 2 labels'),
    'nan_pixels': (_npz_bytes(images=_with_nan(_GOOD_IMAGES), labels=_GOOD_LABELS),
                   'image 1 has NaN or infinite pixels'),
    'inf_pixels': (_npz_bytes(images=np.full((3, 8, 8), np.inf), labels=_GOOD_LABELS),
                   'image 0 has NaN or infinite pixels'),
    'two_channels': (_npz_bytes(images=_GOOD_IMAGES[..., :2], labels=_GOOD_LABELS),
                     r'2 channels; use 1 \(grey\), 3 \(RGB\) or 4 \(RGBA'),
    'five_channels': (_npz_bytes(images=np.zeros((3, 8, 8, 5), np.uint8), labels=_GOOD_LABELS),
                      '5 channels; use 1'),
    'normalised_floats': (_npz_bytes(images=np.full((3, 8, 8), -0.5), labels=_GOOD_LABELS),
                          r'float pixels must lie in \[0, 1\].*undo any normalisation'),
    'sixteen_bit': (_npz_bytes(images=np.full((3, 8, 8), 4095, np.uint16), labels=_GOOD_LABELS),
                    r'integer pixels must lie in 0\.\.255'),
    'no_images': (_npz_bytes(images=np.zeros((0, 8, 8), np.uint8), labels=np.zeros(0, int)),
                  r'N, H, W >= 1, got shape \(0, 8, 8\)'),
    'flat_images': (_npz_bytes(images=np.zeros((3, 64), np.uint8), labels=_GOOD_LABELS),
                    r'images must be \(N,H,W\) or \(N,H,W,C\)'),
}


class BadInputTest(absltest.TestCase):
  """Every bad file ends in one ConfigError line that names it and says what to do."""

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.dir)

  def _write(self, name: str, contents: bytes) -> str:
    path = os.path.join(self.dir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(contents)
    return path

  def _npz(self, path: str, **config):
    return data.load({'name': 'npz', 'path': path, 'size': 8, 'channels': 3, **config}, 2)

  def test_bad_npz_files(self):
    for case, (contents, message) in _BAD_NPZ.items():
      with self.subTest(case):
        path = self._write(f'{case}.npz', contents)
        with self.assertRaisesRegex(ConfigError, message) as cm:
          self._npz(path)
        text = str(cm.exception)
        self.assertIn(path, text)
        self.assertNotIn('\n', text)
        self.assertNotIn('allow_pickle', text)  # never advise unsafe loading
        if case != 'object_images':
          self.assertNotIn('pickle', text)  # only a real object array is called pickled

  def test_file_errors_say_what_an_npz_must_hold(self):
    for case in ('empty', 'npy', 'random_bytes', 'truncated', 'bad_crc', 'object_images'):
      with self.subTest(case), self.assertRaisesRegex(
          ConfigError, r'an \.npz must hold "images" \(N,H,W\) or \(N,H,W,C\) .*uint8 or float '
          r'in \[0, 1\], and "labels" \(N,\)'):
        self._npz(self._write(f'{case}.npz', _BAD_NPZ[case][0]))

  def test_accepted_variants_keep_their_values(self):
    # Whole-number float labels, RGBA (alpha dropped), floats in 0..255 scaled as one file.
    images = np.zeros((3, 8, 8, 4), np.uint8)
    images[..., 0], images[..., 3] = 255, 7
    ds = self._npz(self._write('ok.npz', _npz_bytes(images=images, labels=np.array([0., 4., 1.]))))
    np.testing.assert_array_equal(ds.labels, [0, 4])
    self.assertEqual(ds.num_classes, 5)
    np.testing.assert_array_equal(ds.images[0, 0, 0], [1, 0, 0])
    dark_and_bright = np.stack([np.full((8, 8), 51.0), np.full((8, 8), 255.0)])
    ds = self._npz(self._write('f.npz', _npz_bytes(images=dark_and_bright, labels=[0, 1])))
    np.testing.assert_allclose(ds.images[:, 0, 0, 0], [0.2, 1.0], rtol=1e-6)

  def test_explicit_num_classes_must_cover_every_label(self):
    path = self._write('ok.npz', _GOOD_NPZ)
    self.assertEqual(self._npz(path, num_classes=10).num_classes, 10)
    self.assertEqual(self._npz(path, num_classes=0).num_classes, 3)
    with self.assertRaisesRegex(ConfigError, r'data.num_classes=2 does not cover the labels: the '
                                r'data set has 3 classes \(labels up to 2\)'):
      self._npz(path, num_classes=2)
    with self.assertRaisesRegex(ConfigError, r'data.num_classes must be an integer in \[0, 100'):
      self._npz(path, num_classes=50_000_000)

  def test_npz_and_folder_images_are_centre_cut_not_stretched(self):
    # 8 rows by 24 columns: black | white | black. The centre square is white.
    wide = np.zeros((8, 24), np.uint8)
    wide[:, 8:16] = 255
    ds = self._npz(self._write('wide.npz', _npz_bytes(images=np.stack([wide, wide]),
                                                      labels=[0, 1])))
    np.testing.assert_array_equal(ds.images, np.ones((2, 8, 8, 3), np.float32))
    self._write('folder/a/wide.png', _png_bytes(wide))
    self._write('folder/b/tall.png', _png_bytes(np.ascontiguousarray(wide.T)))
    ds = data.load({'name': 'folder', 'path': os.path.join(self.dir, 'folder'), 'size': 8,
                    'channels': 1}, 2)
    np.testing.assert_array_equal(ds.images, np.ones((2, 8, 8, 1), np.float32))

  def test_unreadable_images_in_a_folder_are_named(self):
    png = _png_bytes(_GOOD_IMAGES[0])
    for case, contents in (('truncated', png[:len(png) // 2]), ('text', b'not an image\n')):
      with self.subTest(case):
        folder = os.path.join(self.dir, case)
        self._write(f'{case}/cat/good.png', png)
        bad = self._write(f'{case}/cat/{case}.png', contents)
        with self.assertRaisesRegex(ConfigError, 'is not a readable PNG/JPEG image') as cm:
          data.load({'name': 'folder', 'path': folder, 'size': 8, 'channels': 3}, 2)
        self.assertIn(bad, str(cm.exception))

  def test_bad_idx_files(self):
    images = np.zeros((3, 8, 8), np.float32)
    labels = np.array([0, 1, 2], np.int8)
    cases = {
        'nan pixels': (images + np.where(np.arange(3) == 2, np.nan, 0)[:, None, None], labels,
                       't10k-images-idx3-ubyte.gz: image 2 has NaN or infinite pixels'),
        'negative label': (images, labels - 1,
                           't10k-labels-idx1-ubyte.gz: label 0 is -1; .*cannot be negative'),
    }
    for case, (pixels, classes, message) in cases.items():
      with self.subTest(case):
        _write_idx(os.path.join(self.dir, 't10k-images-idx3-ubyte.gz'), pixels, code=0x0D)
        _write_idx(os.path.join(self.dir, 't10k-labels-idx1-ubyte.gz'), classes, code=0x09)
        with self.assertRaisesRegex(ConfigError, message):
          data.load({'name': 'idx', 'path': self.dir, 'size': 8, 'channels': 1}, 1)
    self._write('t10k-images-idx3-ubyte.gz', b'\x1f\x8b\x08\x00garbage')
    with self.assertRaisesRegex(ConfigError, 'images-idx3-ubyte.gz is a corrupt or truncated gzip'):
      data.load({'name': 'idx', 'path': self.dir, 'size': 8, 'channels': 1}, 1)
    with gzip.open(os.path.join(self.dir, 't10k-images-idx3-ubyte.gz'), 'wb') as f:
      f.write(b'\x00\x00\x08\x03\x00\x00')
    with self.assertRaisesRegex(ConfigError, 'promises 3 dimensions but the file ends inside it'):
      data.load({'name': 'idx', 'path': self.dir, 'size': 8, 'channels': 1}, 1)

  def test_launch_prints_one_line_and_exits_2(self):
    # A few of the cases above through launch.py: exit 2, one `error:` line, no traceback.
    cases = {
        'random_bytes.npz': (_BAD_NPZ['random_bytes'][0], []),
        'huge_class_count.npz': (_BAD_NPZ['huge_class_count'][0], []),
        'nan_pixels.npz': (_BAD_NPZ['nan_pixels'][0], []),
        'lenet5_at_13.npz': (_GOOD_NPZ, ['--config.model.name=lenet5', '--config.data.size=13']),
    }
    # JAX_PLATFORMS: without it JAX logs its failed TPU probe to stderr first.
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')
    for name, (contents, flags) in cases.items():
      with self.subTest(name):
        path = self._write(name, contents)
        proc = subprocess.run(
            [sys.executable, 'launch.py', '--config=configs/idlg.py:smoke',
             '--config.data.name=npz', f'--config.data.path={path}', *flags,
             f'--workdir={os.path.join(self.dir, "run")}'],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
        lines = proc.stderr.strip().splitlines()
        self.assertLen(lines, 1, proc.stderr[-3000:])
        self.assertStartsWith(lines[0], 'error: ')
        self.assertNotIn('Traceback', proc.stderr)
        self.assertIn('data.size=13' if flags else path, lines[0])


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

  def test_bad_records_are_refused(self):
    records = [{'image': np.zeros((8, 8, 3), np.uint8), 'label': np.int64(3)} for _ in range(3)]
    config = {'name': 'cifar10', 'data_dir': self.dir, 'size': 8, 'channels': 3, 'split': 'test',
              'indices': (2, 0)}
    cases = (('label', np.int64(-1), 'TFDS cifar10/test: label 2 is -1; .*cannot be negative'),
             ('label', np.int64(12), 'a label is 12 but the data set declares 10 classes'),
             ('image', np.zeros((8, 8, 2), np.uint8), r'TFDS cifar10/test\[2\]: images have 2 '
                                                      'channels'))
    for field, value, message in cases:
      with self.subTest(message):
        bad = [dict(r) for r in records]
        bad[2][field] = value
        with self.tfds.testing.mock_data(as_data_source_fn=lambda *a, bad=bad, **k: bad):
          with self.assertRaisesRegex(ConfigError, message):
            data.load(config, 2)

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
