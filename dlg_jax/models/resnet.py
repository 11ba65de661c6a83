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

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.errors import ConfigError
from dlg_jax.models import layers

# torchvision: kaiming_normal_(mode='fan_out', nonlinearity='relu'), untruncated.
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')

# The registered ResNets' stems: (kernel, stride) of the conv; ImageNet's adds
# a 3×3/2 max-pool.
_STEMS = {'cifar': (3, 1), 'imagenet': (7, 2)}


class _ResidualBlock(layers.ConvNet):
  """conv–BN units on `kernels`, plus a shortcut, then `act`.

  The last unit widens to ``features * expansion`` and is linear until the
  sum; the first 3×3 conv carries the stride (v1.5, as torchvision).
  """
  features: int
  strides: int = 1

  # Per subclass: the units' kernel sizes and the last unit's widening.
  kernels = ()
  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = layers.activation(self.act)
    unit = functools.partial(layers.conv_bn, train=train, kernel_init=_conv_init,
                             impl=self.conv_impl)
    out = self.features * self.expansion
    strided = self.kernels.index(3)
    y = x
    for i, k in enumerate(self.kernels):
      last = i == len(self.kernels) - 1
      y = unit(y, out if last else self.features, k,
               strides=self.strides if i == strided else 1, act=None if last else act)
    # torchvision projects only when the shape changes; otherwise the identity.
    if self.strides != 1 or x.shape[-1] != out:
      x = unit(x, out, 1, strides=self.strides, names=('downsample_conv', 'downsample_bn'))
    return act(y + x)


class BasicBlock(_ResidualBlock):
  """Two 3×3 convs with a shortcut; ResNet-18/34's block (expansion 1)."""
  kernels = (3, 3)


class Bottleneck(_ResidualBlock):
  """1×1 reduce, 3×3 (strided), 1×1 expand ×4; ResNet-50's block."""
  kernels = (1, 3, 1)
  expansion = 4


class ResNet(layers.ConvNet):
  """A ResNet of `block`s; `stage_sizes` blocks per stage, widths ×2 per stage.

  Attributes:
    num_classes: logits.
    stem: 'cifar' (3×3/1 conv, no max-pool) or 'imagenet' (7×7/2 conv +
      3×3/2 max-pool, torchvision's).
    width: channels of the first stage (torchvision: 64).
    stage_sizes: blocks per stage; set by the registered subclasses.
    block: `BasicBlock` or `Bottleneck`.
    conv_impl, act: see `layers.ConvNet` (keyword-only).
  """
  num_classes: int = 10
  stem: str = 'cifar'
  width: int = 64
  stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
  block: type[nn.Module] = BasicBlock

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.stem not in _STEMS:
      raise ConfigError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}.")
    act = layers.activation(self.act)
    kernel, strides = _STEMS[self.stem]
    x = layers.conv_bn(x, self.width, kernel, strides=strides, train=train,
                       kernel_init=_conv_init, impl=self.conv_impl, act=act,
                       names=('stem_conv', 'stem_bn'))
    if self.stem == 'imagenet':
      # PyTorch pads max-pools with -inf, as flax does.
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = self.block(self.width * 2**i, strides=strides, act=self.act,
                       conv_impl=self.conv_impl, name=f'stage{i + 1}_block{j + 1}')(
                           x, train=train)
    return layers.classifier(jnp.mean(x, axis=(1, 2)), self.num_classes, name='fc')


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
