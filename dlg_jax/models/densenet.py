"""DenseNet-121 (Huang et al. 2017), parameter-for-parameter torchvision's.

The dense layers of the deep blocks run as scanned segments (`scan_layers`),
each layer's variables under its own name, so the compiled program does not
grow with their depth; the first `unrolled_blocks` blocks, at high resolution,
stay unrolled, where a scan's own bookkeeping costs more than it saves;
`scan_layers=0` unrolls them all.

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

from typing import Any

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
    scan_layers: runs each block's dense layers in scanned segments of this
      many (`_scanned`; 0: unrolled, one copy of the layer per layer in the
      program). 6 compiles DenseNet-121's double backward in 18.8 s instead
      of 61.6 s at 32 px (BUILD_NOTES.md, "Model zoo and the models study").
    unrolled_blocks: the first this many blocks run unrolled even with
      `scan_layers`. A scan stacks each step's full-width feature buffer for
      the backward passes, zero-fills those stacks and copies them; at 56×56
      and 28×28 that cost more than the layers: at 224 px, one core, an IG
      evaluation 1.25 → 0.99 s and a DLG one 1.70 → 1.10 s with 2, the
      program compiling in 35 → 42 s (unrolled entirely: 0.90 s, 69 s).
    conv_impl, act: see `layers.ConvNet` (keyword-only).
  """
  num_classes: int = 10
  growth_rate: int = 32
  block_sizes: tuple[int, ...] = (6, 12, 24, 16)
  bn_size: int = 4
  init_features: int = 64
  compression: float = 0.5
  dropout_rate: float = 0.0
  scan_layers: int = 6
  unrolled_blocks: int = 2

  def _scanned(self, x: jax.Array, names: list[str], train: bool) -> jax.Array:
    """Dense layers `names` as one `lax.scan`: the program holds one layer, not L.

    Each layer's variables keep their own names and shapes (`_LayerVariables`,
    the same tree as `DenseLayer`'s); inside the scan they are zero-padded to
    the segment's final width W, and the features live in a (N, H, W', W)
    buffer that each layer reads whole and writes its `growth_rate` new
    channels into. A zero-padded input channel meets a zero weight, so every
    output equals the unrolled layer's up to float summation order; the
    gradient of a padding is a slice, so parameter gradients keep their
    shapes. The price: the 1×1 convs and first BatchNorms see W channels
    instead of their own (BUILD_NOTES.md, "Model zoo").
    """
    act = layers.activation(self.act)
    n, h, w, c0 = x.shape
    k, wide = self.growth_rate, x.shape[-1] + self.growth_rate * len(names)
    mid = self.bn_size * k
    holders = [_LayerVariables(c0 + k * j, mid, k, self.dropout_rate, (n, h, w, k), name=name)
               for j, name in enumerate(names)]
    per_layer = [holder() for holder in holders]

    def grow(v: jax.Array, axis: int, by: int, fill: float = 0.0) -> jax.Array:
      # lax.pad even when by == 0: each variable is then read once per layer,
      # in forward order, which `order.use_order` (IG's per-layer
      # weights) walks; a stack alone would read every layer's at once.
      config = [(0, 0, 0)] * v.ndim
      config[axis] = (0, by, 0)
      return jax.lax.pad(v, jnp.asarray(fill, v.dtype), config)

    def padded(j: int, v: dict[str, Any]) -> dict[str, Any]:
      width = c0 + k * j
      return {
          'norm0': {f: grow(v['norm0'][f], 0, wide - width, 1.0 if f == 'var' else 0.0)
                    for f in ('scale', 'bias', 'mean', 'var')},
          'kernel0': grow(v['kernel0'], 2, wide - width),
          'norm1': {f: grow(v['norm1'][f], 0, 0) for f in ('scale', 'bias', 'mean', 'var')},
          'kernel1': grow(v['kernel1'], 3, 0),
          'mask': v['mask'], 'offset': jnp.int32(width)}

    xs = jax.tree.map(lambda *v: jnp.stack(v), *[padded(j, v) for j, v in enumerate(per_layer)])
    buffer = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, wide - c0)))

    def layer(buffer, p):
      y, stats0 = _batch_norm(buffer, p['norm0'], train)
      y = layers.conv(act(y), p['kernel0'], 1, ((0, 0), (0, 0)), self.conv_impl)
      y, stats1 = _batch_norm(y, p['norm1'], train)
      y = layers.conv(act(y), p['kernel1'], 1, ((1, 1), (1, 1)), self.conv_impl)
      if self.dropout_rate > 0:
        y = y * p['mask'].astype(y.dtype) / (1.0 - self.dropout_rate)
      buffer = jax.lax.dynamic_update_slice_in_dim(buffer, y, p['offset'], axis=3)
      return buffer, (stats0, stats1)

    buffer, (stats0, stats1) = jax.lax.scan(layer, buffer, xs)
    if train and not self.is_initializing():
      for j, holder in enumerate(holders):
        holder.update(jax.tree.map(lambda s: s[j, :c0 + k * j], stats0),
                      jax.tree.map(lambda s: s[j], stats1))
    return buffer

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = layers.activation(self.act)
    x = layers.conv_bn(x, self.init_features, 7, strides=2, train=train,
                       kernel_init=_conv_init, impl=self.conv_impl, act=act,
                       names=('conv0', None))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for i, num_layers in enumerate(self.block_sizes):
      names = [f'block{i + 1}_layer{j + 1}' for j in range(num_layers)]
      if self.scan_layers and i >= self.unrolled_blocks:
        for start in range(0, num_layers, self.scan_layers):
          x = self._scanned(x, names[start:start + self.scan_layers], train)
      else:
        for name in names:
          new = DenseLayer(self.growth_rate, self.bn_size, self.dropout_rate,
                           conv_impl=self.conv_impl, act=self.act, name=name)(x, train=train)
          x = jnp.concatenate([x, new], axis=-1)
      if i < len(self.block_sizes) - 1:
        x = _bn_act_conv(x, int(x.shape[-1] * self.compression), 1, train, act,
                         self.conv_impl, name=f'transition{i + 1}')
        x = nn.avg_pool(x, (2, 2), (2, 2))
    x = jnp.mean(layers.norm_act(x, train, act), axis=(1, 2))
    return layers.classifier(x, self.num_classes, name='classifier')


# flax's BatchNorm, written out for the scan: running statistics ×0.9 + batch ×0.1.
_MOMENTUM, _EPSILON = 0.9, 1e-5


def _batch_norm(x: jax.Array, v: dict[str, jax.Array], train: bool
                ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """`layers.batch_norm` as a function: (normalised x, the statistics used).

  The batch statistics as flax computes them (`use_fast_variance`: E[x²] −
  E[x]², floored at 0); a padded channel (all zeros, scale 0) stays 0.
  """
  if train:
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.maximum(jnp.mean(jnp.square(x), axis=(0, 1, 2)) - jnp.square(mean), 0.0)
  else:
    mean, var = v['mean'], v['var']
  y = (x - mean) * (jax.lax.rsqrt(var + _EPSILON) * v['scale']) + v['bias']
  return y, (mean, var)


class _LayerVariables(nn.Module):
  """A `DenseLayer`'s variables, same names, shapes and initial values, no computation.

  `__call__` returns them; `update` writes the running statistics of a
  training step (flax's momentum) the way `nn.BatchNorm` would.
  """
  in_features: int
  mid_features: int
  growth_rate: int
  dropout_rate: float
  mask_shape: tuple[int, int, int, int]

  def setup(self):
    self.norm0 = _NormVariables(self.in_features, name='BatchNorm_0')
    self.conv0 = _KernelVariable((1, 1, self.in_features, self.mid_features), name='Conv_0')
    self.norm1 = _NormVariables(self.mid_features, name='BatchNorm_1')
    self.conv1 = _KernelVariable((3, 3, self.mid_features, self.growth_rate), name='Conv_1')
    if self.dropout_rate > 0:
      self.dropout = _MaskVariable(self.mask_shape, self.dropout_rate, name='dropout')

  def __call__(self) -> dict[str, Any]:
    mask = (self.dropout() if self.dropout_rate > 0 else jnp.ones(self.mask_shape))
    return {'norm0': self.norm0(), 'kernel0': self.conv0(), 'norm1': self.norm1(),
            'kernel1': self.conv1(), 'mask': mask}

  def update(self, stats0, stats1) -> None:
    self.norm0.update(*stats0)
    self.norm1.update(*stats1)


class _NormVariables(nn.Module):
  """`nn.BatchNorm`'s variables: batch_stats mean, var; params scale, bias."""
  features: int

  def setup(self):
    shape = (self.features,)
    self.mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, jnp.float32), shape)
    self.var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, jnp.float32), shape)
    self.scale = self.param('scale', nn.initializers.ones, shape)
    self.bias = self.param('bias', nn.initializers.zeros, shape)

  def __call__(self) -> dict[str, jax.Array]:
    return {'scale': self.scale, 'bias': self.bias, 'mean': self.mean.value,
            'var': self.var.value}

  def update(self, mean: jax.Array, var: jax.Array) -> None:
    self.mean.value = _MOMENTUM * self.mean.value + (1 - _MOMENTUM) * mean
    self.var.value = _MOMENTUM * self.var.value + (1 - _MOMENTUM) * var


class _KernelVariable(nn.Module):
  """`layers.Conv`'s 'kernel' (no bias), with DenseNet's initialiser."""
  shape: tuple[int, int, int, int]

  @nn.compact
  def __call__(self) -> jax.Array:
    return self.param('kernel', _conv_init, self.shape)


class _MaskVariable(nn.Module):
  """`layers.MaskedDropout`'s mask; absent at apply time means no dropout.

  A missing mask is returned as 1 − rate everywhere, which the layer's
  ``mask / (1 − rate)`` turns into the identity, as `MaskedDropout` does.
  """
  shape: tuple[int, int, int, int]
  rate: float

  @nn.compact
  def __call__(self) -> jax.Array:
    if self.is_initializing():
      self.variable(layers.MASKS, 'mask', jnp.ones, self.shape, jnp.float32)
      return jnp.ones(self.shape)
    if not self.has_variable(layers.MASKS, 'mask'):
      return jnp.full(self.shape, 1.0 - self.rate)
    return self.get_variable(layers.MASKS, 'mask')


class DenseNet121(DenseNet):
  """DenseNet-121: k=32, blocks (6, 12, 24, 16)."""
