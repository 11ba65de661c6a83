"""Victim data: real images only, pixels in [0, 1] inside the library.

Sources (`config.data.name`):
- ``photos``: the offline default, 16 real photographs shipped inside
  pip-installed packages (scikit-image, scikit-learn, matplotlib), centre-cut
  and resized; each photograph is one class. More victims than photographs
  take further deterministic crops of the same photographs.
- ``npz``: a user's file with ``images`` (N, H, W) or (N, H, W, C), C = 1, 3
  or 4 (RGBA, alpha dropped), uint8 or float in [0, 1], and ``labels`` (N,)
  integers, read with ``allow_pickle=False``.
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
else the first ones in order. Images of every source are centre-cut to a
square and resized to ``size`` (nothing is resampled when the size already
matches).

Bad input is refused at load with a `ConfigError` naming the file: labels
that are not whole numbers, negative, or beyond `MAX_CLASSES`; non-finite
pixels or pixels outside [0, 1] / 0..255; channel counts other than 1, 3 or 4;
files that are not what they claim. Nothing is truncated, wrapped or clipped
silently.

The attacker never sees these arrays: only the client and the metrics do.
"""

from __future__ import annotations

import gzip
import math
import os
import zipfile
import zlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dlg_jax.errors import ConfigError, MissingFileError
from dlg_jax.types import Dataset

_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')

# Labels are the indices 0..C-1 of the classifier's outputs, so C is the
# largest label + 1 and one wild label sizes the whole model: the output layer
# and the attack's dummy label logits grow with C (the DLG LeNet at 32 px holds
# 768 × C weights per copy of its head: 0.3 GB at 10⁵ classes, 150 GB, out of
# memory, at a label of 5·10⁷). 10⁵ is above the largest label sets of public
# image classification (ImageNet-21k: 21,841 classes; iNaturalist 2021:
# 10,000) and far below int32's 2³¹ − 1, so no accepted label can wrap.
MAX_CLASSES = 100_000

_NPZ_SPEC = ('an .npz must hold "images" (N,H,W) or (N,H,W,C) with C = 1, 3 or 4 channels, '
             'uint8 or float in [0, 1], and "labels" (N,) integer class indices >= 0; write one '
             'with np.savez(path, images=images, labels=labels)')


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


def _square_resize(image: np.ndarray, size: int, channels: int) -> np.ndarray:
  """The centre square of one image, resized to `size`, float in [0, 1]."""
  return resize(_crop(_to_float_rgb(image, channels), _CROPS[0]), size)


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


def class_indices(labels: np.ndarray, where: str,
                  ids: Sequence[int] | None = None) -> np.ndarray:
  """`labels` as int32 class indices, or a ConfigError naming `where`.

  Whole-number floats (3.0, as pandas or MATLAB write them) are accepted;
  fractional, NaN or infinite ones, other dtypes, negative labels and labels
  of `MAX_CLASSES` or more are refused, never truncated or wrapped. Messages
  number a label by its position, or by `ids` (its index in the source).

  >>> class_indices(np.array([0.0, 2.0]), 'x.npz')
  array([0, 2], dtype=int32)
  >>> class_indices(np.array([2**32 + 1]), 'x.npz')  # doctest: +ELLIPSIS
  Traceback (most recent call last):
  ...
  dlg_jax.errors.ConfigError: x.npz: label 0 is 4294967297, which does not fit int32; ...
  """
  labels = np.asarray(labels)
  ids = np.arange(len(labels)) if ids is None else np.asarray(ids)
  if labels.ndim != 1:
    raise ConfigError(f'{where}: labels must be a flat (N,) array of class indices, got shape '
                      f'{labels.shape}.')
  if labels.dtype.kind == 'f':
    fractional = ~np.isfinite(labels) | (labels != np.round(labels))
    if fractional.any():
      i = int(np.argmax(fractional))
      raise ConfigError(f'{where}: labels must be integers (class indices); label {ids[i]} is '
                        f'{labels[i]}. Float labels are accepted only when every one is a whole '
                        'number such as 3.0; save integer labels.')
  elif labels.dtype.kind not in 'iu':
    raise ConfigError(f'{where}: labels must be integers (class indices 0..C-1), got dtype '
                      f'{labels.dtype}.')
  if not len(labels):
    return labels.astype(np.int32)
  low, high = int(np.argmin(labels)), int(np.argmax(labels))
  if labels[low] < 0:
    raise ConfigError(f'{where}: label {ids[low]} is {labels[low]}; labels are class indices '
                      '0..C-1 and cannot be negative.')
  if labels[high] > np.iinfo(np.int32).max:
    raise ConfigError(f'{where}: label {ids[high]} is {labels[high]}, which does not fit int32; '
                      f'labels are class indices 0..C-1 with C at most {MAX_CLASSES:,}.')
  if labels[high] >= MAX_CLASSES:
    raise ConfigError(f'{where}: label {ids[high]} is {labels[high]}, which would build a '
                      f'{int(labels[high]) + 1:,}-way classifier; at most {MAX_CLASSES:,} classes '
                      'are supported. Number the classes 0..C-1.')
  return labels.astype(np.int32)


def checked_pixels(images: np.ndarray, where: str) -> np.ndarray:
  """(N, H, W[, C]) images checked, uint8 or float32 in [0, 1]; else a ConfigError.

  Refused: other shapes, empty images, C not in 1 (grey), 3 (RGB), 4 (RGBA:
  the alpha channel is dropped); non-numeric dtypes; NaN or infinite pixels;
  integers outside 0..255; floats outside [0, 1] unless the whole array lies
  in 0..255, which is then scaled by 1/255 (one scale for the whole array:
  scaling each image by its own maximum would brighten the dark ones).

  >>> checked_pixels(np.full((1, 2, 2), 255.0), 'x.npz').max()
  np.float32(1.0)
  """
  images = np.asarray(images)
  if images.ndim not in (3, 4) or 0 in images.shape:
    raise ConfigError(f'{where}: images must be (N,H,W) or (N,H,W,C) with N, H, W >= 1, got '
                      f'shape {images.shape}.')
  if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
    raise ConfigError(f'{where}: images have {images.shape[-1]} channels; use 1 (grey), 3 (RGB) '
                      'or 4 (RGBA, the alpha channel is dropped).')
  kind = images.dtype.kind
  if kind not in 'uif':
    raise ConfigError(f'{where}: images must be uint8 or float in [0, 1], got dtype '
                      f'{images.dtype}.')
  if kind == 'f':
    finite = np.isfinite(images).reshape(len(images), -1).all(axis=1)
    if not finite.all():
      raise ConfigError(f'{where}: image {int(np.argmin(finite))} has NaN or infinite pixels; '
                        'pixels must be finite, uint8 or float in [0, 1].')
  low, high = images.min(), images.max()
  if kind in 'ui':
    if low < 0 or high > 255:
      raise ConfigError(f'{where}: integer pixels must lie in 0..255, got {low}..{high}; save '
                        'uint8 or float in [0, 1].')
    return images.astype(np.uint8, copy=False)
  if low < 0 or high > 255:
    raise ConfigError(f'{where}: float pixels must lie in [0, 1], got [{low:.4g}, {high:.4g}]; '
                      'undo any normalisation (mean/std) before saving.')
  images = images.astype(np.float32, copy=False)
  return images / np.float32(255) if high > 1 else images


def _npz_arrays(path: str) -> tuple[np.ndarray, np.ndarray]:
  """The raw "images" and "labels" of an .npz, or a ConfigError naming `path`."""
  with open(path, 'rb') as f:
    head = f.read(6)
  # np.load guesses the format from these bytes and falls back to pickle,
  # whose error would call any unknown file "pickled data": decide first.
  if not head:
    raise ConfigError(f'{path} is empty; {_NPZ_SPEC}.')
  if head.startswith(b'\x93NUMPY'):
    raise ConfigError(f'{path} is a .npy file (one array, from np.save), not an .npz; {_NPZ_SPEC}.')
  if not head.startswith((b'PK\x03\x04', b'PK\x05\x06')):
    raise ConfigError(f'{path} is not an .npz file (a zip archive of .npy arrays); {_NPZ_SPEC}.')
  try:
    archive = np.load(path, allow_pickle=False)
  except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
    raise ConfigError(f'{path} is a corrupt or truncated .npz ({e}); {_NPZ_SPEC}.') from e
  with archive:
    missing = {'images', 'labels'} - set(archive.files)
    if missing:
      raise ConfigError(f'{path} lacks {sorted(missing)}; it has {sorted(archive.files)}; '
                        f'{_NPZ_SPEC}.')
    return _npz_member(archive, 'images', path), _npz_member(archive, 'labels', path)


def _npz_member(archive: Any, key: str, path: str) -> np.ndarray:
  try:
    return archive[key]
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
    if _holds_objects(archive, key):
      raise ConfigError(f'{path}: "{key}" is an array of Python objects (pickled), which is '
                        'never unpickled here since unpickling can run code; save a numeric '
                        f'array instead; {_NPZ_SPEC}.') from e
    raise ConfigError(f'{path}: "{key}" is corrupt or truncated ({e}); {_NPZ_SPEC}.') from e


def _holds_objects(archive: Any, key: str) -> bool:
  """Whether npz member `key` is an object array, read from its header alone."""
  try:
    with archive.zip.open(key + '.npy') as member:
      version = np.lib.format.read_magic(member)
      read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
      return read(member)[2].hasobject
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError):
    return False


def load_npz(path: str, size: int, channels: int) -> Dataset:
  """Images and labels from a user's .npz file (no pickles), centre-cut and resized."""
  if not path or not os.path.isfile(path):
    raise MissingFileError(f'data.path={path!r} is not a file; point it at an .npz; {_NPZ_SPEC}.')
  raw, labels = _npz_arrays(path)
  raw, labels = checked_pixels(raw, path), class_indices(labels, path)
  if len(raw) != len(labels):
    raise ConfigError(f'{path}: {len(raw)} images but {len(labels)} labels; {_NPZ_SPEC}.')
  images = np.stack([_square_resize(x, size, channels) for x in raw])
  return Dataset(images, labels, int(labels.max()) + 1, tuple(f'{os.path.basename(path)}[{i}]'
                                                              for i in range(len(images))))


def _read_image(path: str) -> np.ndarray:
  """An image file as (H, W, 3) uint8, or a ConfigError naming it."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert('RGB'))
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    # PIL raises SyntaxError for some broken PNG chunks.
    raise ConfigError(f'{path} is not a readable PNG/JPEG image ({e}); remove it from '
                      'data.path or replace it.') from e


def load_folder(path: str, size: int, channels: int) -> Dataset:
  """PNG/JPEG files under class sub-folders; labels follow sorted folder names."""
  if not path or not os.path.isdir(path):
    raise MissingFileError(f'data.path={path!r} is not a folder of class sub-folders.')
  classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
  images, labels, names = [], [], []
  for label, cls in enumerate(classes):
    for fname in sorted(os.listdir(os.path.join(path, cls))):
      if fname.lower().endswith(_IMAGE_SUFFIXES):
        images.append(_square_resize(_read_image(os.path.join(path, cls, fname)), size, channels))
        labels.append(label)
        names.append(f'{cls}/{fname}')
  if not images:
    raise ConfigError(f'no PNG/JPEG images found in class sub-folders of {path}.')
  return Dataset(np.stack(images), class_indices(np.asarray(labels), path), len(classes),
                 tuple(names))


# IDX files as Yann LeCun's MNIST page names them (Fashion-MNIST and KMNIST
# keep the names); 't10k' is the test split.
_IDX_PREFIX = {'train': 'train', 'test': 't10k'}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
               0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def read_idx(path: str) -> np.ndarray:
  """One IDX file (gzip or raw): magic 0x0000TTNN, NN big-endian int32 dims, data."""
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      raw = f.read()
  except (EOFError, zlib.error, gzip.BadGzipFile) as e:
    raise ConfigError(f'{path} is a corrupt or truncated gzip file ({e}).') from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise ConfigError(f'{path} is not an IDX file (bad magic number {raw[:4].hex()}).')
  dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
  offset = 4 + 4 * ndim
  if len(raw) < offset:
    raise ConfigError(f'{path}: the IDX header promises {ndim} dimensions but the file ends '
                      'inside it; is it truncated?')
  dims = tuple(int(d) for d in np.frombuffer(raw, '>i4', count=ndim, offset=4))
  if len(raw) - offset != dtype.itemsize * math.prod(dims):  # exact: no int64 overflow
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


def load_idx(config: Mapping[str, Any], count: int) -> Dataset:
  """Victims from MNIST-style gzip IDX files in `config.path` (split train/test)."""
  folder, split = config.get('path', ''), config.get('split', 'test')
  size, channels = int(config['size']), int(config['channels'])
  if split not in _IDX_PREFIX:
    raise ConfigError(f'data.split must be one of {sorted(_IDX_PREFIX)} for IDX files, got {split!r}.')
  if not folder or not os.path.isdir(folder):
    raise MissingFileError(f'data.path={folder!r} is not a folder of IDX files.')
  image_file, label_file = (_idx_file(folder, split, kind) for kind in ('images-idx3',
                                                                        'labels-idx1'))
  images, labels = read_idx(image_file), read_idx(label_file)
  if images.ndim != 3 or labels.shape != images.shape[:1]:
    raise ConfigError(f'{folder}: expected images (N, H, W) and labels (N,), got '
                     f'{images.shape} and {labels.shape}.')
  images, labels = checked_pixels(images, image_file), class_indices(labels, label_file)
  chosen = choose(len(images), count, config)
  out = np.stack([_square_resize(images[i], size, channels) for i in chosen])
  name = os.path.basename(os.path.normpath(folder))
  return Dataset(out, labels[chosen], int(labels.max()) + 1,
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
    image = checked_pixels(np.asarray(record[image_key])[None], f'TFDS {name}/{split}[{i}]')[0]
    images.append(_square_resize(image, size, channels))
    labels.append(np.asarray(record[label_key]))
  labels = class_indices(np.asarray(labels), f'TFDS {name}/{split}', ids=chosen)
  num_classes = _num_classes(tfds, name, data_dir, label_key, labels)
  if labels.max() >= num_classes:
    raise ConfigError(f'TFDS {name}/{split}: a label is {labels.max()} but the data set declares '
                      f'{num_classes} classes; the prepared files are corrupt, rebuild them.')
  return Dataset(np.stack(images), labels, num_classes,
                 tuple(f'{name}/{split}[{i}]' for i in chosen))


def _supervised_keys(tfds, name: str, data_dir: str) -> tuple[str, str]:
  info = tfds.builder(name, data_dir=data_dir or None).info
  keys = info.supervised_keys
  if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
    raise ConfigError(f'TFDS data set {name!r} has no (image, label) supervised keys '
                     f'({keys!r}); only image-classification sets can be victims.')
  return keys[0], keys[1]


def _num_classes(tfds, name: str, data_dir: str, label_key: str, labels: np.ndarray) -> int:
  feature = tfds.builder(name, data_dir=data_dir or None).info.features[label_key]
  return int(getattr(feature, 'num_classes', 0) or labels.max() + 1)


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
      data_dir (TFDS), split, indices, sample_seed (idx/TFDS), num_classes
      (optional; 0 or absent: the data set's own count, else at least it).
    count: how many images the experiment needs (victims × batch size).
  """
  name, size, channels = config['name'], int(config['size']), int(config['channels'])
  check_name(name)
  if channels not in (1, 3):
    raise ConfigError(f'data.channels must be 1 or 3, got {channels}.')
  if size < 8:
    raise ConfigError(f'data.size must be at least 8 pixels, got {size}.')
  given = config.get('num_classes', 0) or 0
  if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given <= MAX_CLASSES:
    raise ConfigError(f'data.num_classes must be an integer in [0, {MAX_CLASSES:,}] (0: the data '
                      f"set's own count), got {given!r}.")
  dataset = _load_source(config, count)
  if given and given < dataset.num_classes:
    raise ConfigError(f'data.num_classes={given} does not cover the labels: the data set has '
                      f'{dataset.num_classes} classes (labels up to {dataset.num_classes - 1}); '
                      "set it to at least that, or to 0 for the data set's own count.")
  return dataset._replace(num_classes=given or dataset.num_classes)


def _load_source(config: Mapping[str, Any], count: int) -> Dataset:
  name, size, channels = config['name'], int(config['size']), int(config['channels'])
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
