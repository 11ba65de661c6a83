"""Per-data-set normalisation between [0, 1] pixels and the model's input space.

Victims, reconstructions, the box constraint and every metric live in [0, 1]
pixels. Networks trained on a data set expect `(x - mean) / std` per channel.
`Normalization` is the pair of maps (`to_model`, `to_pixels`); `normalized`
folds `to_model` into the model as its first layer, so that the client, every
attack and the metrics keep handling [0, 1] pixels and none of their code
changes.

Why the model and not the attack: the gradient-matching objective is the same
function of the image either way (the shared gradient depends on the pixels
only through the normalised input), so only the optimiser's parametrisation
differs — an attack that optimises in pixel space boxes to [0, 1] exactly,
whereas one in normalised space boxes to [-mean/std, (1-mean)/std]. For signed
Adam (Inverting Gradients) the two are the same up to the step size, scaled
by `std` per channel; for L-BFGS they differ only in conditioning. Resizing
and centre-cropping to the model's input (224 or 299 pixels) happen once on
the host in `data.load` (`data.size`), so both ends see the same pixels.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from dlg_jax.errors import ConfigError
from dlg_jax.models import Model
from dlg_jax.types import PyTree

# Per-channel (mean, std) of each data set's training split in [0, 1] pixels,
# as the literature and torchvision/TFDS examples use them.
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    'mnist': ((0.1307,), (0.3081,)),
    'fashion_mnist': ((0.2860,), (0.3530,)),
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    'cifar100': ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    'svhn_cropped': ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    'imagenet2012': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclasses.dataclass(frozen=True)
class Normalization:
  """`to_model(x) = (x - mean) / std` per channel and its inverse.

  >>> n = Normalization((0.5,), (0.25,))
  >>> float(n.to_model(jnp.ones((1, 2, 2, 1)))[0, 0, 0, 0])
  2.0
  """
  mean: tuple[float, ...]
  std: tuple[float, ...]

  def to_model(self, pixels: jax.Array) -> jax.Array:
    """[0, 1] pixels (..., C) -> the model's input space."""
    return (pixels - jnp.asarray(self.mean, pixels.dtype)) / jnp.asarray(self.std, pixels.dtype)

  def to_pixels(self, x: jax.Array) -> jax.Array:
    """The model's input space -> [0, 1] pixels (not clipped)."""
    return x * jnp.asarray(self.std, x.dtype) + jnp.asarray(self.mean, x.dtype)


def from_config(config: Mapping[str, Any], channels: int) -> Normalization | None:
  """The normalisation `data.normalize` asks for, or None.

  `data.normalize`: '' (none), a data-set name in `STATS`, or 'custom' with
  `data.mean` and `data.std` (one value, or one per channel).
  """
  choice = config.get('normalize', '') or ''
  if not choice:
    return None
  if choice == 'custom':
    mean, std = tuple(config.get('mean', ())), tuple(config.get('std', ()))
  elif choice in STATS:
    mean, std = STATS[choice]
  else:
    raise ConfigError(f'data.normalize must be "", "custom" or one of {sorted(STATS)}, '
                     f'got {choice!r}.')
  if len(mean) != len(std) or len(mean) not in (1, channels):
    raise ConfigError(f'data.normalize={choice!r} gives mean {mean} and std {std}: need one '
                     f'value or one per channel ({channels}) for each.')
  if min(float(s) for s in std) <= 0:
    raise ConfigError(f'data.std must be positive, got {std}.')
  if len(mean) == 1 and channels > 1:  # a grey set's stats on RGB copies of it
    mean, std = mean * channels, std * channels
  return Normalization(tuple(float(m) for m in mean), tuple(float(s) for s in std))


@dataclasses.dataclass(frozen=True)
class NormalizedModel(Model):
  """A `Model` whose first layer is `normalization.to_model`: it takes pixels.

  Parameters, masks and `module` are the wrapped model's, unchanged, so
  trained weights load as before. Caveat: a closed-form attack that reads
  the first layer's input (attacks/analytic.py) recovers the normalised
  input; map it back with `normalization.to_pixels`.
  """
  normalization: Normalization = Normalization((0.0,), (1.0,))

  def apply(self, variables: PyTree, x: jax.Array, *, masks: PyTree | None = None,
            train: bool = False, mutable: bool = False
            ) -> jax.Array | tuple[jax.Array, PyTree]:
    """`Model.apply` on `normalization.to_model(x)`, for [0, 1] pixels `x`."""
    return super().apply(variables, self.normalization.to_model(x), masks=masks, train=train,
                         mutable=mutable)


def normalized(model: Model, normalization: Normalization | None) -> Model:
  """`model` with `normalization` folded in as its first layer (or unchanged)."""
  if normalization is None:
    return model
  return NormalizedModel(name=model.name, module=model.module, input_shape=model.input_shape,
                         num_classes=model.num_classes, normalization=normalization)
