"""Victim data: real images only, pixels in [0, 1] inside the library.

Sources (`config.data.name`):
- ``photos``: the offline default, 16 real photographs shipped inside
  pip-installed packages (scikit-image, scikit-learn, matplotlib), centre-cut
  and resized; each photograph is one class. More victims than photographs
  take further deterministic crops of the same photographs.
- ``npz``: a user's file with ``images`` (N, H, W) or (N, H, W, C) uint8 and
  ``labels`` int, read with ``allow_pickle=False``.
- ``folder``: PNG/JPEG files in class sub-folders (label = sorted folder index).
- ``digits``: scikit-learn's 1,797 handwritten 8×8 digits (offline), a fixed
  seeded train/test split; the utility data set of the defense sweep.
- ``idx``: the gzip IDX files of an MNIST-style set in ``path`` (e.g. Debian's
  ``dataset-fashion-mnist``: /usr/share/datasets/fashion-mnist), split
  ``train`` or ``test``.
- any other name: a TFDS image-classification data set (mnist, fashion_mnist,
  cifar10, cifar100, svhn_cropped, imagenet2012, ...) prepared as ArrayRecord
  under ``data_dir`` and read with `tfds.data_source` (no TensorFlow, no
  network); tensorflow-datasets is imported only on this path.

For ``idx`` and TFDS the victims are chosen from ``split`` by ``indices``
(explicit), else by a seeded sample without replacement (``sample_seed`` >= 0),
else the first ones in order. Images are centre-cut to a square and resized to
``size`` (nothing is resampled when the size already matches).

The attacker never sees these arrays: only the client and the metrics do.
"""

from __future__ import annotations

import gzip
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dlg_jax.errors import ConfigError, MissingFileError
from dlg_jax.types import Dataset

_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


def _skimage(name: str) -> Callable[[], np.ndarray]:
  def load():
    from skimage import data  # pylint: disable=g-import-not-at-top
    image = getattr(data, name)()
    return image[0] if isinstance(image, tuple) else image  # stereo pairs
  return load


def _sklearn(index: int) -> Callable[[], np.ndarray]:
  def load():
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
    return datasets.load_sample_images().images[index]
  return load


def _matplotlib(filename: str) -> Callable[[], np.ndarray]:
  def load():
    import matplotlib.cbook  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with matplotlib.cbook.get_sample_data(filename) as f:
      return np.asarray(Image.open(f).convert('RGB'))
  return load


# Real photographs that install with the project's requirements; the label of
# each is its position here. Greyscale ones are repeated over RGB.
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    'astronaut': _skimage('astronaut'),
    'chelsea_cat': _skimage('chelsea'),
    'coffee': _skimage('coffee'),
    'rocket': _skimage('rocket'),
    'hubble_deep_field': _skimage('hubble_deep_field'),
    'immunohistochemistry': _skimage('immunohistochemistry'),
    'retina': _skimage('retina'),
    'motorcycle': _skimage('stereo_motorcycle'),
    'china_temple': _sklearn(0),
    'flower': _sklearn(1),
    'grace_hopper': _matplotlib('grace_hopper.jpg'),
    'cameraman': _skimage('camera'),
    'coins': _skimage('coins'),
    'moon': _skimage('moon'),
    'clock': _skimage('clock'),
    'text': _skimage('text'),
}

# (top, left, size) of each crop as fractions of the shorter side; crop 0 is
# the centre square, the rest are deterministic sub-crops for more victims.
_CROPS = ((None, None, 1.0), (0.0, 0.0, 0.6), (0.4, 0.4, 0.6), (0.0, 0.4, 0.6), (0.4, 0.0, 0.6))


def _to_float_rgb(image: np.ndarray, channels: int) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / 255.0
  else:
    image = image.astype(np.float32)
    if image.max() > 1.0:
      image = image / 255.0
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 4:
    image = image[..., :3]
  if channels == 3 and image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  elif channels == 1 and image.shape[-1] == 3:
    image = image @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
  return np.clip(image, 0.0, 1.0)


def _crop(image: np.ndarray, crop: tuple[Any, Any, float]) -> np.ndarray:
  h, w = image.shape[:2]
  side = int(min(h, w) * crop[2])
  if crop[0] is None:
    top, left = (h - side) // 2, (w - side) // 2
  else:
    top = int(crop[0] * (h - side) / 0.4) if h > side else 0
    left = int(crop[1] * (w - side) / 0.4) if w > side else 0
  return image[top:top + side, left:left + side]


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Anti-aliased resize of an (H, W, C) float image to (size, size, C)."""
  from skimage import transform  # pylint: disable=g-import-not-at-top
  if image.shape[:2] == (size, size):
    return image.astype(np.float32)
  out = transform.resize(image, (size, size), order=1, anti_aliasing=True)
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def load_photos(count: int, size: int, channels: int) -> Dataset:
  """`count` real photo crops, deterministic; labels = photograph index."""
  limit = len(PHOTOS) * len(_CROPS)
  if count > limit:
    raise ConfigError(f'the offline photos give at most {limit} victims, {count} were asked for; '
                     'use data.name="npz" or "folder" with your own images for more.')
  images, labels, names = [], [], []
  cache: dict[str, np.ndarray] = {}
  for i in range(count):
    crop, index = divmod(i, len(PHOTOS))
    name = list(PHOTOS)[index]
    if name not in cache:
      cache[name] = _to_float_rgb(PHOTOS[name](), channels)
    images.append(resize(_crop(cache[name], _CROPS[crop]), size))
    labels.append(index)
    names.append(name if crop == 0 else f'{name}#{crop}')
  return Dataset(np.stack(images), np.asarray(labels, np.int32), len(PHOTOS), tuple(names))


def load_npz(path: str, size: int, channels: int) -> Dataset:
  """Images and labels from a user's .npz file (no pickles)."""
  if not path or not os.path.isfile(path):
    raise MissingFileError(f'data.path={path!r} is not a file; point it at an .npz with '
                            '"images" (N,H,W[,C]) uint8 and "labels" (N,) int.')
  with np.load(path, allow_pickle=False) as f:
    missing = {'images', 'labels'} - set(f.files)
    if missing:
      raise ConfigError(f'{path} lacks {sorted(missing)}; it has {sorted(f.files)}.')
    raw, labels = f['images'], f['labels']
  if raw.ndim not in (3, 4) or len(raw) != len(labels):
    raise ConfigError(f'{path}: images must be (N,H,W) or (N,H,W,C) with one label each; '
                     f'got images {raw.shape} and labels {labels.shape}.')
  images = np.stack([resize(_to_float_rgb(x, channels), size) for x in raw])
  labels = labels.astype(np.int32)
  num_classes = int(labels.max()) + 1 if len(labels) else 0
  return Dataset(images, labels, num_classes, tuple(f'{os.path.basename(path)}[{i}]'
                                                    for i in range(len(images))))


def load_folder(path: str, size: int, channels: int) -> Dataset:
  """PNG/JPEG files under class sub-folders; labels follow sorted folder names."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if not path or not os.path.isdir(path):
    raise MissingFileError(f'data.path={path!r} is not a folder of class sub-folders.')
  classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
  images, labels, names = [], [], []
  for label, cls in enumerate(classes):
    for fname in sorted(os.listdir(os.path.join(path, cls))):
      if fname.lower().endswith(_IMAGE_SUFFIXES):
        with Image.open(os.path.join(path, cls, fname)) as im:
          images.append(resize(_to_float_rgb(np.asarray(im.convert('RGB')), channels), size))
        labels.append(label)
        names.append(f'{cls}/{fname}')
  if not images:
    raise ConfigError(f'no PNG/JPEG images found in class sub-folders of {path}.')
  return Dataset(np.stack(images), np.asarray(labels, np.int32), len(classes), tuple(names))


# IDX files as Yann LeCun's MNIST page names them (Fashion-MNIST and KMNIST
# keep the names); 't10k' is the test split.
_IDX_PREFIX = {'train': 'train', 'test': 't10k'}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
               0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def read_idx(path: str) -> np.ndarray:
  """One IDX file (gzip or raw): magic 0x0000TTNN, NN big-endian int32 dims, data."""
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'rb') as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise ConfigError(f'{path} is not an IDX file (bad magic number {raw[:4].hex()}).')
  dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
  dims = tuple(int(d) for d in np.frombuffer(raw, '>i4', count=ndim, offset=4))
  offset = 4 + 4 * ndim
  if len(raw) - offset != dtype.itemsize * int(np.prod(dims)):
    raise ConfigError(f'{path}: header says {dims} of {dtype} but the file holds '
                     f'{len(raw) - offset} bytes of data; is it truncated?')
  return np.frombuffer(raw, dtype, offset=offset).reshape(dims)


def _idx_file(folder: str, split: str, kind: str) -> str:
  stem = f'{_IDX_PREFIX[split]}-{kind}-ubyte'
  for name in (stem + '.gz', stem):
    if os.path.isfile(os.path.join(folder, name)):
      return os.path.join(folder, name)
  raise MissingFileError(
      f'data.path={folder!r} has no {stem}[.gz]. Point data.path at a folder of MNIST-style '
      'IDX files, e.g. /usr/share/datasets/fashion-mnist after `apt-get install '
      'dataset-fashion-mnist` (see README.md for a no-root install).')


def choose(available: int, count: int, config: Mapping[str, Any]) -> np.ndarray:
  """The indices of the `count` victims within a split of `available` images.

  `config.indices` (explicit, used in order) wins; else `config.sample_seed`
  >= 0 draws a seeded sample without replacement; else the first `count`.
  """
  indices = list(config.get('indices', None) or ())
  seed = int(config.get('sample_seed', -1))
  if indices:
    chosen = np.asarray(indices, np.int64)
    if len(chosen) < count:
      raise ConfigError(f'data.indices lists {len(chosen)} images; the run needs {count} '
                       '(num_victims × batch_size).')
    chosen = chosen[:count]
    if chosen.min() < 0 or chosen.max() >= available:
      raise ConfigError(f'data.indices must lie in [0, {available}), got min {chosen.min()} '
                       f'max {chosen.max()}.')
    return chosen
  if count > available:
    raise ConfigError(f'the split has {available} images; the run needs {count} '
                     '(num_victims × batch_size).')
  if seed >= 0:
    return np.random.default_rng(seed).choice(available, size=count, replace=False)
  return np.arange(count)


def _square_resize(image: np.ndarray, size: int, channels: int) -> np.ndarray:
  return resize(_crop(_to_float_rgb(image, channels), (None, None, 1.0)), size)


def load_idx(config: Mapping[str, Any], count: int) -> Dataset:
  """Victims from MNIST-style gzip IDX files in `config.path` (split train/test)."""
  folder, split = config.get('path', ''), config.get('split', 'test')
  size, channels = int(config['size']), int(config['channels'])
  if split not in _IDX_PREFIX:
    raise ConfigError(f'data.split must be one of {sorted(_IDX_PREFIX)} for IDX files, got {split!r}.')
  if not folder or not os.path.isdir(folder):
    raise MissingFileError(f'data.path={folder!r} is not a folder of IDX files.')
  images = read_idx(_idx_file(folder, split, 'images-idx3'))
  labels = read_idx(_idx_file(folder, split, 'labels-idx1'))
  if images.ndim != 3 or labels.shape != images.shape[:1]:
    raise ConfigError(f'{folder}: expected images (N, H, W) and labels (N,), got '
                     f'{images.shape} and {labels.shape}.')
  chosen = choose(len(images), count, config)
  out = np.stack([_square_resize(images[i], size, channels) for i in chosen])
  name = os.path.basename(os.path.normpath(folder))
  return Dataset(out, labels[chosen].astype(np.int32), int(labels.max()) + 1,
                 tuple(f'{name}/{split}[{i}]' for i in chosen))


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConfigError('TFDS data sets need tensorflow-datasets (no TensorFlow): '
                     'pip install "tensorflow-datasets>=4.9.10" importlib_resources') from e
  return tfds


def _prepare_hint(name: str, data_dir: str) -> str:
  return (f'prepare it on a machine with network access and TensorFlow: '
          f'`tfds build {name} --file_format=array_record --data_dir={data_dir or "DIR"}` '
          '(pip install tensorflow-cpu tensorflow-datasets), then copy that folder here and '
          'set data.data_dir to it.')


def load_tfds(config: Mapping[str, Any], count: int) -> Dataset:
  """Victims from a TFDS image-classification set prepared as ArrayRecord.

  Reads with `tfds.data_source(..., download=False)`: random access, no
  TensorFlow and never the network. A set that is not prepared in
  `config.data_dir` raises FileNotFoundError saying how to prepare it.
  """
  tfds = _import_tfds()
  name, split, data_dir = config['name'], config.get('split', 'test'), config.get('data_dir', '')
  size, channels = int(config['size']), int(config['channels'])
  if data_dir and not os.path.isdir(data_dir):
    raise MissingFileError(f'data.data_dir={data_dir!r} is not a folder; ' +
                            _prepare_hint(name, data_dir))
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
  except (RuntimeError, OSError, AssertionError) as e:  # NotImplementedError is a RuntimeError
    raise MissingFileError(f'TFDS data set {name!r} (split {split!r}) is not prepared as '
                            f'ArrayRecord in data.data_dir={data_dir!r}; ' +
                            _prepare_hint(name, data_dir) + f' (TFDS said: {e})') from e
  image_key, label_key = _supervised_keys(tfds, name, data_dir)
  chosen = choose(len(source), count, config)
  images, labels = [], []
  for i in chosen:  # one record at a time: the mock source lacks __getitems__
    record = source[int(i)]
    images.append(_square_resize(np.asarray(record[image_key]), size, channels))
    labels.append(int(record[label_key]))
  num_classes = _num_classes(tfds, name, data_dir, label_key, labels)
  return Dataset(np.stack(images), np.asarray(labels, np.int32), num_classes,
                 tuple(f'{name}/{split}[{i}]' for i in chosen))


def _supervised_keys(tfds, name: str, data_dir: str) -> tuple[str, str]:
  info = tfds.builder(name, data_dir=data_dir or None).info
  keys = info.supervised_keys
  if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
    raise ConfigError(f'TFDS data set {name!r} has no (image, label) supervised keys '
                     f'({keys!r}); only image-classification sets can be victims.')
  return keys[0], keys[1]


def _num_classes(tfds, name: str, data_dir: str, label_key: str, labels: Sequence[int]) -> int:
  feature = tfds.builder(name, data_dir=data_dir or None).info.features[label_key]
  return int(getattr(feature, 'num_classes', 0) or max(labels) + 1)


# scikit-learn's digits: a fixed, seeded, stratified split (train/test), so
# that every training run and every sweep sees the same test images.
DIGITS_SPLITS = ('train', 'test', 'all')
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0


def load_digits(path: str = '', size: int = 32, channels: int = 1, *,
                split: str = 'train') -> Dataset:
  """scikit-learn's handwritten digits: 1,797 real 8×8 scans, 10 classes, offline.

  Pixels 0..16 become [0, 1], then are resized to `size` (bilinear) and
  repeated over `channels`. `split` is ``'train'`` (1,347 images), ``'test'``
  (450, stratified, seed `DIGITS_SPLIT_SEED`) or ``'all'``. `path` is ignored
  (the data ship with scikit-learn); it is there for the `LOADERS` signature.
  """
  del path
  if split not in DIGITS_SPLITS:
    raise ConfigError(f'digits split must be one of {list(DIGITS_SPLITS)}, got {split!r}.')
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  labels = digits.target.astype(np.int32)
  index = np.arange(len(labels))
  if split != 'all':
    train, test = model_selection.train_test_split(
        index, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels)
    index = np.sort(train if split == 'train' else test)
  images = np.stack([resize(_to_float_rgb(digits.images[i] / 16.0, channels), size)
                     for i in index])
  return Dataset(images, labels[index], 10, tuple(f'digits[{i}]' for i in index))


LOADERS = {'photos': None, 'npz': load_npz, 'folder': load_folder, 'idx': load_idx,
           'digits': load_digits}


def check_name(name: str) -> None:
  """Raises ValueError unless `name` is a local source or a TFDS name."""
  if name in LOADERS:
    return
  try:
    tfds = _import_tfds()
  except ValueError:
    raise ConfigError(f'unknown data set {name!r}; choose one of {sorted(LOADERS)}, or a TFDS '
                     'name after installing tensorflow-datasets.') from None
  if name not in tfds.list_builders(with_community_datasets=False):
    raise ConfigError(f'unknown data set {name!r}; choose one of {sorted(LOADERS)} or a TFDS '
                     'image-classification name (mnist, fashion_mnist, cifar10, cifar100, '
                     'svhn_cropped, imagenet2012, ...).')


def load(config: Mapping[str, Any], count: int) -> Dataset:
  """At least `count` images of the configured source, resized and in [0, 1].

  Args:
    config: `data` config: name, size, channels, path (npz/folder/idx),
      data_dir (TFDS), split, indices, sample_seed (idx/TFDS).
    count: how many images the experiment needs (victims × batch size).
  """
  name, size, channels = config['name'], int(config['size']), int(config['channels'])
  check_name(name)
  if channels not in (1, 3):
    raise ConfigError(f'data.channels must be 1 or 3, got {channels}.')
  if size < 8:
    raise ConfigError(f'data.size must be at least 8 pixels, got {size}.')
  if name == 'photos':
    return load_photos(count, size, channels)
  if name == 'idx':
    return load_idx(config, count)
  if name not in LOADERS:
    return load_tfds(config, count)
  dataset = LOADERS[name](config.get('path', ''), size, channels)
  if len(dataset.images) < count:
    raise ConfigError(f'{name} at {config.get("path")} has {len(dataset.images)} images; '
                     f'the run needs {count} (num_victims × batch_size).')
  return Dataset(dataset.images[:count], dataset.labels[:count], dataset.num_classes,
                 dataset.names[:count])
