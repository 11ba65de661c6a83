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

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.models import layers

_uniform_half = nn.initializers.uniform(scale=1.0)


def _shifted_uniform(key, shape, dtype=jnp.float32):
  # U(-0.5, 0.5) as in DLG's `weights_init`.
  return _uniform_half(key, shape, dtype) - 0.5


class _LeNet(nn.Module):
  """Flat features (`features`, per subclass), a dropout site, the classifier.

  The dropout site is Zheng's placement, before the classifier; its mask comes
  from the 'dropout_masks' collection.
  """
  num_classes: int = 10
  act: str = 'relu'
  dropout_rate: float = 0.0
  conv_impl: str = 'im2col'

  # Keyword arguments of the classifier's `nn.Dense` (its initialisers).
  head_init = {}

  def features(self, x: jax.Array, act: layers.Activation) -> jax.Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no batch statistics in these models
    x = self.features(x, layers.activation(self.act))
    return layers.classifier(x, self.num_classes, dropout_rate=self.dropout_rate,
                             **self.head_init)


class DLGLeNet(_LeNet):
  """LeNet of the DLG paper's code; any channel count, 28 or 32 pixels."""
  num_classes: int = 100
  act: str = 'sigmoid'
  channels: int = 12

  head_init = {'kernel_init': _shifted_uniform, 'bias_init': _shifted_uniform}

  def features(self, x: jax.Array, act: layers.Activation) -> jax.Array:
    for stride in (2, 2, 1):
      x = act(layers.Conv(self.channels, (5, 5), strides=stride, padding=2,
                          kernel_init=_shifted_uniform, bias_init=_shifted_uniform,
                          impl=self.conv_impl)(x))
    return x.reshape(x.shape[0], -1)


class LeNet5(_LeNet):
  """LeNet-5 (LeCun et al. 1998) with Zheng's dropout before the classifier.

  Max-pooling and ReLU by default (as in Zheng's code); `act='sigmoid'` gives
  the smoother network gradient inversion prefers.
  """

  def features(self, x: jax.Array, act: layers.Activation) -> jax.Array:
    x = act(layers.Conv(6, (5, 5), padding=2 if x.shape[1] == 28 else 0,
                        impl=self.conv_impl)(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = act(layers.Conv(16, (5, 5), padding='VALID', impl=self.conv_impl)(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    x = act(layers.dense(120)(x))
    return act(layers.dense(84)(x))
