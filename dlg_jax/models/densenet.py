"""DenseNet-121 (Huang et al. 2017), parameter-for-parameter torchvision's.

Pre-activation dense layers (BN–ReLU–1×1 conv to ``bn_size * growth_rate`` –
BN–ReLU–3×3 conv to ``growth_rate``), each concatenated onto its block's input;
transitions are BN–ReLU–1×1 conv (×``compression`` channels)–2×2 average pool;
a final BN–ReLU, global average pool and one dense layer. Convs have no bias.
With 1000 classes that is torchvision's 7,978,856 parameters. ``act`` swaps
every ReLU (``act='sigmoid'``: Khowaja's study, configs/models_study.py).

The stem is ImageNet's (7×7/2 conv, 3×3/2 max-pool); the network still runs
on 32×32 inputs (the last block then sees 1×1 maps).

References:
  Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.models import layers

# torchvision: kaiming_normal_ with its defaults (fan_in, ReLU gain), untruncated.
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')


def _bn_act_conv(x: jax.Array, features: int, kernel: int, train: bool, act: layers.Activation,
                 impl: str, name: str | None = None) -> jax.Array:
  """BN – act – conv (no bias, k // 2 padding): DenseNet's pre-activation unit."""
  return layers.Conv(features, (kernel, kernel), padding=kernel // 2, use_bias=False,
                     kernel_init=_conv_init, impl=impl, name=name)(
                         layers.norm_act(x, train, act))


class DenseLayer(layers.ConvNet):
  """Returns only the `growth_rate` new channels; the caller concatenates."""
  growth_rate: int
  bn_size: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = layers.activation(self.act)
    y = _bn_act_conv(x, self.bn_size * self.growth_rate, 1, train, act, self.conv_impl)
    y = _bn_act_conv(y, self.growth_rate, 3, train, act, self.conv_impl)
    if self.dropout_rate > 0:
      # torchvision's `drop_rate`: dropout on each layer's new features.
      y = layers.MaskedDropout(self.dropout_rate, name='dropout')(y)
    return y


class DenseNet(layers.ConvNet):
  """DenseNet; the defaults are DenseNet-121.

  Attributes:
    num_classes: logits.
    growth_rate: channels each dense layer adds (k).
    block_sizes: dense layers per block.
    bn_size: bottleneck width of a dense layer, in multiples of k.
    init_features: channels of the stem conv.
    compression: channel factor of each transition.
    dropout_rate: > 0 adds a `MaskedDropout` after every dense layer.
    conv_impl, act: see `layers.ConvNet` (keyword-only).
  """
  num_classes: int = 10
  growth_rate: int = 32
  block_sizes: tuple[int, ...] = (6, 12, 24, 16)
  bn_size: int = 4
  init_features: int = 64
  compression: float = 0.5
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = layers.activation(self.act)
    x = layers.conv_bn(x, self.init_features, 7, strides=2, train=train,
                       kernel_init=_conv_init, impl=self.conv_impl, act=act,
                       names=('conv0', None))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for i, num_layers in enumerate(self.block_sizes):
      for j in range(num_layers):
        new = DenseLayer(self.growth_rate, self.bn_size, self.dropout_rate,
                         conv_impl=self.conv_impl, act=self.act,
                         name=f'block{i + 1}_layer{j + 1}')(x, train=train)
        x = jnp.concatenate([x, new], axis=-1)
      if i < len(self.block_sizes) - 1:
        x = _bn_act_conv(x, int(x.shape[-1] * self.compression), 1, train, act,
                         self.conv_impl, name=f'transition{i + 1}')
        x = nn.avg_pool(x, (2, 2), (2, 2))
    x = jnp.mean(layers.norm_act(x, train, act), axis=(1, 2))
    return layers.classifier(x, self.num_classes, name='classifier')


class DenseNet121(DenseNet):
  """DenseNet-121: k=32, blocks (6, 12, 24, 16)."""
