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

The attacker never sees these arrays: only the client and the metrics do.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import numpy as np

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
    raise ValueError(f'the offline photos give at most {limit} victims, {count} were asked for; '
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
    raise FileNotFoundError(f'data.path={path!r} is not a file; point it at an .npz with '
                            '"images" (N,H,W[,C]) uint8 and "labels" (N,) int.')
  with np.load(path, allow_pickle=False) as f:
    missing = {'images', 'labels'} - set(f.files)
    if missing:
      raise ValueError(f'{path} lacks {sorted(missing)}; it has {sorted(f.files)}.')
    raw, labels = f['images'], f['labels']
  if raw.ndim not in (3, 4) or len(raw) != len(labels):
    raise ValueError(f'{path}: images must be (N,H,W) or (N,H,W,C) with one label each; '
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
    raise FileNotFoundError(f'data.path={path!r} is not a folder of class sub-folders.')
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
    raise ValueError(f'no PNG/JPEG images found in class sub-folders of {path}.')
  return Dataset(np.stack(images), np.asarray(labels, np.int32), len(classes), tuple(names))


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
    raise ValueError(f'digits split must be one of {list(DIGITS_SPLITS)}, got {split!r}.')
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


LOADERS = {'photos': None, 'npz': load_npz, 'folder': load_folder,
           'digits': load_digits}


def load(config: Mapping[str, Any], count: int) -> Dataset:
  """At least `count` images of the configured source, resized and in [0, 1].

  Args:
    config: `data` config: name, size, channels, path (npz/folder).
    count: how many images the experiment needs (victims × batch size).
  """
  name, size, channels = config['name'], int(config['size']), int(config['channels'])
  if name not in LOADERS:
    raise ValueError(f'unknown data set {name!r}; choose one of {sorted(LOADERS)}.')
  if channels not in (1, 3):
    raise ValueError(f'data.channels must be 1 or 3, got {channels}.')
  if size < 8:
    raise ValueError(f'data.size must be at least 8 pixels, got {size}.')
  if name == 'photos':
    return load_photos(count, size, channels)
  dataset = LOADERS[name](config.get('path', ''), size, channels)
  if len(dataset.images) < count:
    raise ValueError(f'{name} at {config.get("path")} has {len(dataset.images)} images; '
                     f'the run needs {count} (num_victims × batch_size).')
  return Dataset(dataset.images[:count], dataset.labels[:count], dataset.num_classes,
                 dataset.names[:count])
