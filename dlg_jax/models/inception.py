"""Inception-v3 (Szegedy et al. 2016) with its auxiliary head, as torchvision's.

Every conv is torchvision's ``BasicConv2d``: conv without bias, BatchNorm
(eps 1e-3), ReLU. Blocks A–E, their branch widths and their order of
concatenation are torchvision's; stride-2 convs and max-pools are unpadded,
the 3×3 average pools inside blocks pad by 1 and count the padding (PyTorch's
default). With 1000 classes the network has torchvision's 27,161,264
parameters, the auxiliary head included.

The auxiliary head (on the 17×17 maps of a 299×299 input) runs when
``train=True`` and at init, so that its parameters always exist. `__call__`
still returns only the main logits, as every model here does; the auxiliary
logits are sown into the ``'intermediates'`` collection as ``'aux_logits'``
for a caller that wants torchvision's ``loss + 0.4 * aux_loss``:

  logits, state = module.apply(variables, x, train=True,
                               mutable=['batch_stats', 'intermediates'])
  aux_logits, = state['intermediates']['aux_logits']

Inputs down to 75×75 work; below 299 the auxiliary head zero-pads its 5×5
conv's input so that it still ends in a 1×1 map.

References:
  Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
  CVPR 2016.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.models import layers
from dlg_jax.models import lenet

# torchvision: trunc_normal_(std=0.1) (cut at ±2, i.e. ±20σ: a plain normal),
# except the aux head's conv1 (0.01) and fc (0.001).
_weight_init = nn.initializers.normal(0.1)


class BasicConv(nn.Module):
  """conv (no bias) – BN (eps 1e-3) – ReLU (or `act`); 'SAME' padding keeps the size."""
  features: int
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: str | int = 'SAME'
  stddev: float = 0.1  # of the kernel's init; see `_weight_init`
  conv_impl: str = 'xla'
  act: str = 'relu'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    # With stride 1 and odd kernels, 'SAME' is PyTorch's k//2 padding, also for
    # the 1×7 / 7×1 convs whose padding differs per axis.
    x = layers.Conv(self.features, self.kernel_size, strides=self.strides,
                    padding=self.padding, use_bias=False,
                    kernel_init=nn.initializers.normal(self.stddev),
                    impl=self.conv_impl)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-3)(x)
    return lenet.activation(self.act)(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  # F.avg_pool2d(x, 3, stride=1, padding=1): zero padding counted in the mean.
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=True)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), (2, 2))


class InceptionA(nn.Module):
  """35×35 block: 1×1, 5×5, double 3×3 and pool branches."""
  pool_features: int
  conv_impl: str = 'xla'
  act: str = 'relu'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = functools.partial(BasicConv, conv_impl=self.conv_impl, act=self.act)
    b1 = conv(64, name='branch1x1')(x, train)
    b5 = conv(48, name='branch5x5_1')(x, train)
    b5 = conv(64, (5, 5), name='branch5x5_2')(b5, train)
    b3 = conv(64, name='branch3x3dbl_1')(x, train)
    b3 = conv(96, (3, 3), name='branch3x3dbl_2')(b3, train)
    b3 = conv(96, (3, 3), name='branch3x3dbl_3')(b3, train)
    bp = conv(self.pool_features, name='branch_pool')(_avg_pool_3x3(x), train)
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """35→17 reduction: strided 3×3, strided double 3×3, max-pool."""
  conv_impl: str = 'xla'
  act: str = 'relu'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = functools.partial(BasicConv, conv_impl=self.conv_impl, act=self.act)
    b3 = conv(384, (3, 3), strides=2, padding='VALID', name='branch3x3')(x, train)
    bd = conv(64, name='branch3x3dbl_1')(x, train)
    bd = conv(96, (3, 3), name='branch3x3dbl_2')(bd, train)
    bd = conv(96, (3, 3), strides=2, padding='VALID', name='branch3x3dbl_3')(bd, train)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """17×17 block with factorised 7×7 convs (1×7 then 7×1)."""
  channels_7x7: int
  conv_impl: str = 'xla'
  act: str = 'relu'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = functools.partial(BasicConv, conv_impl=self.conv_impl, act=self.act)
    c7 = self.channels_7x7
    b1 = conv(192, name='branch1x1')(x, train)
    b7 = conv(c7, name='branch7x7_1')(x, train)
    b7 = conv(c7, (1, 7), name='branch7x7_2')(b7, train)
    b7 = conv(192, (7, 1), name='branch7x7_3')(b7, train)
    bd = conv(c7, name='branch7x7dbl_1')(x, train)
    bd = conv(c7, (7, 1), name='branch7x7dbl_2')(bd, train)
    bd = conv(c7, (1, 7), name='branch7x7dbl_3')(bd, train)
    bd = conv(c7, (7, 1), name='branch7x7dbl_4')(bd, train)
    bd = conv(192, (1, 7), name='branch7x7dbl_5')(bd, train)
    bp = conv(192, name='branch_pool')(_avg_pool_3x3(x), train)
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """17→8 reduction."""
  conv_impl: str = 'xla'
  act: str = 'relu'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = functools.partial(BasicConv, conv_impl=self.conv_impl, act=self.act)
    b3 = conv(192, name='branch3x3_1')(x, train)
    b3 = conv(320, (3, 3), strides=2, padding='VALID', name='branch3x3_2')(b3, train)
    b7 = conv(192, name='branch7x7x3_1')(x, train)
    b7 = conv(192, (1, 7), name='branch7x7x3_2')(b7, train)
    b7 = conv(192, (7, 1), name='branch7x7x3_3')(b7, train)
    b7 = conv(192, (3, 3), strides=2, padding='VALID', name='branch7x7x3_4')(b7, train)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """8×8 block with split 1×3 / 3×1 branches."""
  conv_impl: str = 'xla'
  act: str = 'relu'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = functools.partial(BasicConv, conv_impl=self.conv_impl, act=self.act)
    b1 = conv(320, name='branch1x1')(x, train)
    b3 = conv(384, name='branch3x3_1')(x, train)
    b3 = jnp.concatenate([conv(384, (1, 3), name='branch3x3_2a')(b3, train),
                          conv(384, (3, 1), name='branch3x3_2b')(b3, train)], axis=-1)
    bd = conv(448, name='branch3x3dbl_1')(x, train)
    bd = conv(384, (3, 3), name='branch3x3dbl_2')(bd, train)
    bd = jnp.concatenate([conv(384, (1, 3), name='branch3x3dbl_3a')(bd, train),
                          conv(384, (3, 1), name='branch3x3dbl_3b')(bd, train)], axis=-1)
    bp = conv(192, name='branch_pool')(_avg_pool_3x3(x), train)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionAux(nn.Module):
  """5×5/3 average pool, 1×1 conv 128, 5×5 conv 768, global pool, dense."""
  num_classes: int
  conv_impl: str = 'xla'
  act: str = 'relu'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    window = min(5, x.shape[1], x.shape[2])
    x = nn.avg_pool(x, (window, window), (3, 3))
    x = BasicConv(128, conv_impl=self.conv_impl, act=self.act, name='conv0')(x, train)
    # At 299×299 the map is 5×5 here and the conv is unpadded (torchvision);
    # smaller inputs are zero-padded up to the kernel.
    pad = max(0, -(-(5 - min(x.shape[1:3])) // 2))
    x = BasicConv(768, (5, 5), padding=pad, stddev=0.01, conv_impl=self.conv_impl,
                  act=self.act, name='conv1')(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.001),
                    name='fc')(x)


class InceptionV3(nn.Module):
  """Inception-v3 for 299×299 inputs (75×75 at least).

  Attributes:
    num_classes: logits.
    dropout_rate: > 0 adds a `MaskedDropout` before the classifier
      (torchvision: 0.5); default 0, the deterministic network.
    conv_impl: 'xla' (default) or 'im2col' (see `layers.Conv`). XLA's conv
      here: on these deep nets im2col compiled ~1.3× slower, stepped only
      ~10% faster on CPU (ResNet-18, 32×32 gradient matching) and holds
      k×k copies of every activation.
    act: activation name (see `lenet.activation`) of every BasicConv, ReLU by
      default; 'sigmoid' is Khowaja's study (configs/models_study.py).
  """
  num_classes: int = 10
  dropout_rate: float = 0.0
  conv_impl: str = 'xla'
  act: str = 'relu'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = functools.partial(BasicConv, conv_impl=self.conv_impl, act=self.act)
    impl = self.conv_impl
    act = self.act
    x = conv(32, (3, 3), strides=2, padding='VALID', name='Conv2d_1a_3x3')(x, train)
    x = conv(32, (3, 3), padding='VALID', name='Conv2d_2a_3x3')(x, train)
    x = conv(64, (3, 3), name='Conv2d_2b_3x3')(x, train)
    x = _max_pool_3x3_s2(x)
    x = conv(80, name='Conv2d_3b_1x1')(x, train)
    x = conv(192, (3, 3), padding='VALID', name='Conv2d_4a_3x3')(x, train)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, impl, act, name='Mixed_5b')(x, train)
    x = InceptionA(64, impl, act, name='Mixed_5c')(x, train)
    x = InceptionA(64, impl, act, name='Mixed_5d')(x, train)
    x = InceptionB(impl, act, name='Mixed_6a')(x, train)
    for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160),
                     ('Mixed_6e', 192)):
      x = InceptionC(c7, impl, act, name=name)(x, train)
    if train or self.is_initializing():
      aux = InceptionAux(self.num_classes, impl, act, name='AuxLogits')(x, train)
      self.sow('intermediates', 'aux_logits', aux)
    x = InceptionD(impl, act, name='Mixed_7a')(x, train)
    x = InceptionE(impl, act, name='Mixed_7b')(x, train)
    x = InceptionE(impl, act, name='Mixed_7c')(x, train)
    x = jnp.mean(x, axis=(1, 2))
    if self.dropout_rate > 0:
      x = layers.MaskedDropout(self.dropout_rate, name='dropout')(x)
    return nn.Dense(self.num_classes, kernel_init=_weight_init, name='fc')(x)
