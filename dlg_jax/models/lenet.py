"""The LeNets of the gradient-leakage papers.

`DLGLeNet` is the network of the DLG code (Zhu et al. 2019): three 5×5
convolutions with 12 channels, strides 2, 2, 1, padding 2, sigmoid after each,
one dense layer; every weight and bias drawn uniformly from (−0.5, 0.5).
Sigmoid and the wide init keep the gradients twice differentiable and
informative, which is what makes DLG converge on it.

`LeNet5` is LeCun et al. 1998's network as Zheng ("Dropout against Deep
Leakage from Gradients") uses it: conv 6@5×5 – pool – conv 16@5×5 – pool –
fc 120 – fc 84 – dropout – classifier.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.models import layers

_uniform_half = nn.initializers.uniform(scale=1.0)


def _shifted_uniform(key, shape, dtype=jnp.float32):
  # U(-0.5, 0.5) as in DLG's `weights_init`.
  return _uniform_half(key, shape, dtype) - 0.5


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'sigmoid': nn.sigmoid, 'relu': nn.relu, 'tanh': jnp.tanh,
    'gelu': nn.gelu, 'swish': nn.swish, 'elu': nn.elu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """Looks an activation up by name, listing the choices on a miss."""
  if name not in _ACTIVATIONS:
    raise ValueError(f'unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}.')
  return _ACTIVATIONS[name]


class DLGLeNet(nn.Module):
  """LeNet of the DLG paper's code; any channel count, 28 or 32 pixels.

  `dropout_rate` > 0 adds a dropout site before the classifier (Zheng's
  placement); its mask comes from the 'dropout_masks' collection.
  """
  num_classes: int = 100
  channels: int = 12
  act: str = 'sigmoid'
  dropout_rate: float = 0.0
  conv_impl: str = 'im2col'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no batch statistics in this model
    act = activation(self.act)
    for stride in (2, 2, 1):
      x = layers.Conv(self.channels, (5, 5), strides=stride, padding=2,
                      kernel_init=_shifted_uniform, bias_init=_shifted_uniform,
                      impl=self.conv_impl)(x)
      x = act(x)
    x = x.reshape(x.shape[0], -1)
    if self.dropout_rate > 0:
      x = layers.MaskedDropout(self.dropout_rate, name='dropout')(x)
    return nn.Dense(self.num_classes, kernel_init=_shifted_uniform,
                    bias_init=_shifted_uniform)(x)


class LeNet5(nn.Module):
  """LeNet-5 (LeCun et al. 1998) with Zheng's dropout before the classifier.

  Max-pooling and ReLU by default (as in Zheng's code); `act='sigmoid'` gives
  the smoother network gradient inversion prefers.
  """
  num_classes: int = 10
  act: str = 'relu'
  dropout_rate: float = 0.0
  conv_impl: str = 'im2col'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    act = activation(self.act)
    x = act(layers.Conv(6, (5, 5), padding=2 if x.shape[1] == 28 else 0,
                        impl=self.conv_impl)(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = act(layers.Conv(16, (5, 5), padding='VALID', impl=self.conv_impl)(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    x = act(nn.Dense(120)(x))
    x = act(nn.Dense(84)(x))
    if self.dropout_rate > 0:
      x = layers.MaskedDropout(self.dropout_rate, name='dropout')(x)
    return nn.Dense(self.num_classes)(x)
