"""ResNets (He et al. 2016), parameter-for-parameter torchvision's.

`ResNet18` / `ResNet34` stack `BasicBlock`s, `ResNet50` stacks `Bottleneck`s
(v1.5: the stride sits on the 3×3 conv, as in torchvision). Convolutions that
feed a BatchNorm have no bias, downsampling shortcuts are 1×1 conv + BN, and
the classifier is global average pooling + one dense layer, so with
``stem='imagenet'`` and 1000 classes the parameter counts equal torchvision's
(11,689,512 / 21,797,672 / 25,557,032).

``stem='cifar'`` (the default, since the attacks here run on 32×32 images)
replaces the 7×7/2 conv + max-pool by one 3×3/1 conv, as in the CIFAR ResNets
of the gradient-inversion literature (Geiping et al. 2020). ``act='sigmoid'``
swaps every ReLU, as Khowaja et al.'s study of activations does.

References:
  He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.models import layers
from dlg_jax.models import lenet

# torchvision: kaiming_normal_(mode='fan_out', nonlinearity='relu'), untruncated.
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def _batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
  # torchvision's momentum 0.1 is flax's 0.9 (flax weighs the old average).
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      name=name)


class BasicBlock(nn.Module):
  """Two 3×3 convs with a shortcut; ResNet-18/34's block (expansion 1)."""
  features: int
  strides: int = 1
  act: Callable[[jax.Array], jax.Array] = nn.relu
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = functools.partial(layers.Conv, use_bias=False, kernel_init=_conv_init,
                             impl=self.conv_impl)
    y = conv(self.features, (3, 3), strides=self.strides, padding=1)(x)
    y = self.act(_batch_norm(train)(y))
    y = conv(self.features, (3, 3), padding=1)(y)
    y = _batch_norm(train)(y)
    return self.act(y + _shortcut(x, self.features, self.strides, train, conv))


class Bottleneck(nn.Module):
  """1×1 reduce, 3×3 (strided), 1×1 expand ×4; ResNet-50's block."""
  features: int
  strides: int = 1
  act: Callable[[jax.Array], jax.Array] = nn.relu
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = functools.partial(layers.Conv, use_bias=False, kernel_init=_conv_init,
                             impl=self.conv_impl)
    y = self.act(_batch_norm(train)(conv(self.features, (1, 1), padding=0)(x)))
    y = conv(self.features, (3, 3), strides=self.strides, padding=1)(y)
    y = self.act(_batch_norm(train)(y))
    y = conv(self.features * 4, (1, 1), padding=0)(y)
    y = _batch_norm(train)(y)
    return self.act(y + _shortcut(x, self.features * 4, self.strides, train, conv))


def _shortcut(x: jax.Array, features: int, strides: int, train: bool,
              conv: Callable[..., nn.Module]) -> jax.Array:
  # torchvision projects only when the shape changes; otherwise the identity.
  if strides == 1 and x.shape[-1] == features:
    return x
  y = conv(features, (1, 1), strides=strides, padding=0, name='downsample_conv')(x)
  return _batch_norm(train, name='downsample_bn')(y)


class ResNet(nn.Module):
  """A ResNet of `block`s; `stage_sizes` blocks per stage, widths ×2 per stage.

  Attributes:
    num_classes: logits.
    stem: 'cifar' (3×3/1 conv, no max-pool) or 'imagenet' (7×7/2 conv +
      3×3/2 max-pool, torchvision's).
    act: activation name (see `lenet.activation`), used everywhere ReLU is.
    width: channels of the first stage (torchvision: 64).
    stage_sizes: blocks per stage; set by the registered subclasses.
    block: `BasicBlock` or `Bottleneck`.
    conv_impl: 'xla' (default) or 'im2col' (see `layers.Conv`). XLA's conv
      here: on these deep nets im2col compiled ~1.3× slower, stepped only
      ~10% faster on CPU (ResNet-18, 32×32 gradient matching) and holds
      k×k copies of every activation.
  """
  num_classes: int = 10
  stem: str = 'cifar'
  act: str = 'relu'
  width: int = 64
  stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
  block: type[nn.Module] = BasicBlock
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = lenet.activation(self.act)
    conv = functools.partial(layers.Conv, use_bias=False, kernel_init=_conv_init,
                             impl=self.conv_impl)
    if self.stem == 'imagenet':
      x = conv(self.width, (7, 7), strides=2, padding=3, name='stem_conv')(x)
      x = act(_batch_norm(train, name='stem_bn')(x))
      # PyTorch pads max-pools with -inf, as flax does.
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    elif self.stem == 'cifar':
      x = conv(self.width, (3, 3), padding=1, name='stem_conv')(x)
      x = act(_batch_norm(train, name='stem_bn')(x))
    else:
      raise ValueError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}.")
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = self.block(self.width * 2**i, strides=strides, act=act,
                       conv_impl=self.conv_impl, name=f'stage{i + 1}_block{j + 1}')(
                           x, train=train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, name='fc')(x)


class ResNet18(ResNet):
  """ResNet-18: BasicBlocks (2, 2, 2, 2)."""
  stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
  block: type[nn.Module] = BasicBlock


class ResNet34(ResNet):
  """ResNet-34: BasicBlocks (3, 4, 6, 3)."""
  stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
  block: type[nn.Module] = BasicBlock


class ResNet50(ResNet):
  """ResNet-50: Bottlenecks (3, 4, 6, 3)."""
  stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
  block: type[nn.Module] = Bottleneck
