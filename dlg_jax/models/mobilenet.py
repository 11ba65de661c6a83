"""MobileNetV2 (Sandler et al. 2018), width 1.0, as torchvision builds it.

Inverted residual blocks: 1×1 expand (×t) – ReLU6 – 3×3 depthwise (stride s) –
ReLU6 – 1×1 linear projection, each conv followed by BN and without bias; a
residual when the shape is kept. The stem is a 3×3/2 conv to 32 channels, the
head a 1×1 conv to 1280, global average pooling and one dense layer: with 1000
classes torchvision's 3,504,872 parameters.

torchvision puts ``Dropout(0.2)`` before the classifier; here that site exists
only when ``dropout_rate > 0`` (default 0, i.e. the deterministic network), so
that a config's dropout rate is always explicit.

References:
  Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
  CVPR 2018.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.models import convolution
from dlg_jax.models import layers

# torchvision: kaiming_normal_(mode='fan_out'); classifier N(0, 0.01), bias 0.
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
_dense_init = nn.initializers.normal(0.01)

# (expansion t, output channels c, repeats n, first stride s), from the paper.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
  """Expand – depthwise – project, with a residual when shapes match."""
  features: int
  strides: int
  expansion: int
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    unit = functools.partial(layers.conv_bn, train=train, kernel_init=_conv_init,
                             impl=self.conv_impl)
    hidden = x.shape[-1] * self.expansion
    y = x
    if self.expansion != 1:
      y = unit(y, hidden, 1, act=nn.relu6)
    # flax's grouped conv (same parameters and names), computed as shifted
    # products: XLA:CPU runs grouped convs in its slow loop inside attacks.
    y = nn.Conv(hidden, (3, 3), strides=self.strides, padding=((1, 1), (1, 1)),
                feature_group_count=hidden, use_bias=False, kernel_init=_conv_init,
                conv_general_dilated=convolution.conv_general_dilated)(y)
    y = nn.relu6(layers.batch_norm(train)(y))
    y = unit(y, self.features, 1)
    if self.strides == 1 and x.shape[-1] == self.features:
      y = x + y
    return y


class MobileNetV2(nn.Module):
  """MobileNetV2 at width 1.0.

  Attributes:
    num_classes: logits.
    dropout_rate: > 0 adds a `MaskedDropout` before the classifier
      (torchvision: 0.2).
    conv_impl: 'xla' (default) or 'im2col' for the non-depthwise convs
      (see `layers.ConvNet` for why XLA's is the default).
  """
  num_classes: int = 10
  dropout_rate: float = 0.0
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    unit = functools.partial(layers.conv_bn, train=train, kernel_init=_conv_init,
                             impl=self.conv_impl, act=nn.relu6)
    x = unit(x, 32, 3, strides=2)
    for t, c, n, s in _SETTINGS:
      for i in range(n):
        x = InvertedResidual(c, s if i == 0 else 1, t, conv_impl=self.conv_impl)(
            x, train=train)
    x = unit(x, 1280, 1)
    return layers.classifier(jnp.mean(x, axis=(1, 2)), self.num_classes,
                             dropout_rate=self.dropout_rate, kernel_init=_dense_init,
                             name='classifier')
