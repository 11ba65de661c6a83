"""Inception-v3 (Szegedy et al. 2016) with its auxiliary head, as torchvision's.

Every conv is torchvision's ``BasicConv2d``: conv without bias, BatchNorm
(eps 1e-3), ReLU. Blocks A–E, their branch widths and their order of
concatenation are torchvision's, written as tables of branches (`_block_a` …
`_BLOCK_E`) that one `InceptionBlock` runs; stride-2 convs and max-pools are
unpadded, the 3×3 average pools inside blocks pad by 1 and count the padding
(PyTorch's default). With 1000 classes the network has torchvision's 27,161,264
parameters, the auxiliary head included.

The auxiliary head (on the 17×17 maps of a 299×299 input) runs when
``train=True`` and at init, so that its parameters always exist. `__call__`
still returns only the main logits, as every model here does; the auxiliary
logits are sown into the ``'intermediates'`` collection as ``'aux_logits'``
for a caller that wants torchvision's ``loss + 0.4 * aux_loss`` (the bare
module: a `preprocess.NormalizedModel`'s input must be normalised first):

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
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.models import layers

# torchvision: trunc_normal_(std=0.1) (cut at ±2, i.e. ±20σ: a plain normal),
# except the aux head's conv1 (0.01) and fc (0.001).
_weight_init = nn.initializers.normal(0.1)


class BasicConv(layers.ConvNet):
  """conv (no bias) – BN (eps 1e-3) – ReLU (or `act`); 'SAME' padding keeps the size."""
  features: int
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: str | int = 'SAME'
  stddev: float = 0.1  # of the kernel's init; see `_weight_init`

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    # With stride 1 and odd kernels, 'SAME' is PyTorch's k//2 padding, also for
    # the 1×7 / 7×1 convs whose padding differs per axis.
    return layers.conv_bn(x, self.features, self.kernel_size, train=train,
                          kernel_init=nn.initializers.normal(self.stddev),
                          impl=self.conv_impl, strides=self.strides, padding=self.padding,
                          act=layers.activation(self.act), epsilon=1e-3)


class ConvStep(NamedTuple):
  """One `BasicConv` of a branch, by its torchvision name."""
  name: str
  features: int
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: str = 'SAME'


# A branch is a sequence of steps, run in order: a `ConvStep`; a pool, `AVG_POOL`
# (3×3/1, padding 1 counted in the mean: PyTorch's F.avg_pool2d(x, 3, 1, 1))
# or `MAX_POOL` (3×3/2, unpadded); or a split, a tuple of `ConvStep`s run side by
# side on the same input and concatenated.
AVG_POOL, MAX_POOL = 'avg_pool', 'max_pool'
Step = ConvStep | str | tuple[ConvStep, ...]


def _run(x: jax.Array, steps: tuple[Step, ...], train: bool, conv_impl: str,
         act: str) -> jax.Array:
  """Runs a branch's steps; the `BasicConv`s are the calling module's."""
  for step in steps:
    if isinstance(step, ConvStep):
      x = BasicConv(step.features, step.kernel_size, step.strides, step.padding,
                    conv_impl=conv_impl, act=act, name=step.name)(x, train)
    elif step == AVG_POOL:
      x = nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=True)
    elif step == MAX_POOL:
      x = nn.max_pool(x, (3, 3), (2, 2))
    else:
      x = jnp.concatenate([_run(x, (conv,), train, conv_impl, act) for conv in step], axis=-1)
  return x


class InceptionBlock(layers.ConvNet):
  """Branches (tuples of `Step`s) run side by side, outputs concatenated in order."""
  branches: tuple[tuple[Step, ...], ...]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return jnp.concatenate([_run(x, branch, train, self.conv_impl, self.act)
                            for branch in self.branches], axis=-1)


_3x3, _5x5, _1x7, _7x1, _1x3, _3x1 = (3, 3), (5, 5), (1, 7), (7, 1), (1, 3), (3, 1)
_C = ConvStep  # short, for the tables below


def _block_a(pool_features: int) -> tuple[tuple[Step, ...], ...]:
  """35×35 block: 1×1, 5×5, double 3×3 and pool branches."""
  return ((_C('branch1x1', 64),),
          (_C('branch5x5_1', 48), _C('branch5x5_2', 64, _5x5)),
          (_C('branch3x3dbl_1', 64), _C('branch3x3dbl_2', 96, _3x3),
           _C('branch3x3dbl_3', 96, _3x3)),
          (AVG_POOL, _C('branch_pool', pool_features)))


def _block_c(c7: int) -> tuple[tuple[Step, ...], ...]:
  """17×17 block with factorised 7×7 convs (1×7 then 7×1), `c7` channels inside."""
  return ((_C('branch1x1', 192),),
          (_C('branch7x7_1', c7), _C('branch7x7_2', c7, _1x7), _C('branch7x7_3', 192, _7x1)),
          (_C('branch7x7dbl_1', c7), _C('branch7x7dbl_2', c7, _7x1),
           _C('branch7x7dbl_3', c7, _1x7), _C('branch7x7dbl_4', c7, _7x1),
           _C('branch7x7dbl_5', 192, _1x7)),
          (AVG_POOL, _C('branch_pool', 192)))


# 35→17 reduction: strided 3×3, strided double 3×3, max-pool.
_BLOCK_B = ((_C('branch3x3', 384, _3x3, 2, 'VALID'),),
            (_C('branch3x3dbl_1', 64), _C('branch3x3dbl_2', 96, _3x3),
             _C('branch3x3dbl_3', 96, _3x3, 2, 'VALID')),
            (MAX_POOL,))

# 17→8 reduction.
_BLOCK_D = ((_C('branch3x3_1', 192), _C('branch3x3_2', 320, _3x3, 2, 'VALID')),
            (_C('branch7x7x3_1', 192), _C('branch7x7x3_2', 192, _1x7),
             _C('branch7x7x3_3', 192, _7x1), _C('branch7x7x3_4', 192, _3x3, 2, 'VALID')),
            (MAX_POOL,))

# 8×8 block with split 1×3 / 3×1 branches.
_BLOCK_E = ((_C('branch1x1', 320),),
            (_C('branch3x3_1', 384),
             (_C('branch3x3_2a', 384, _1x3), _C('branch3x3_2b', 384, _3x1))),
            (_C('branch3x3dbl_1', 448), _C('branch3x3dbl_2', 384, _3x3),
             (_C('branch3x3dbl_3a', 384, _1x3), _C('branch3x3dbl_3b', 384, _3x1))),
            (AVG_POOL, _C('branch_pool', 192)))

# The stem: one branch, run by the network itself (its convs are top-level).
_STEM = (_C('Conv2d_1a_3x3', 32, _3x3, 2, 'VALID'), _C('Conv2d_2a_3x3', 32, _3x3, 1, 'VALID'),
         _C('Conv2d_2b_3x3', 64, _3x3), MAX_POOL, _C('Conv2d_3b_1x1', 80),
         _C('Conv2d_4a_3x3', 192, _3x3, 1, 'VALID'), MAX_POOL)

# (torchvision's name, branches) of the blocks before and after the aux head.
_MIXED_5_6 = (('Mixed_5b', _block_a(32)), ('Mixed_5c', _block_a(64)),
              ('Mixed_5d', _block_a(64)), ('Mixed_6a', _BLOCK_B),
              ('Mixed_6b', _block_c(128)), ('Mixed_6c', _block_c(160)),
              ('Mixed_6d', _block_c(160)), ('Mixed_6e', _block_c(192)))
_MIXED_7 = (('Mixed_7a', _BLOCK_D), ('Mixed_7b', _BLOCK_E), ('Mixed_7c', _BLOCK_E))


class InceptionAux(layers.ConvNet):
  """5×5/3 average pool, 1×1 conv 128, 5×5 conv 768, global pool, dense."""
  num_classes: int

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
    return layers.classifier(jnp.mean(x, axis=(1, 2)), self.num_classes,
                             kernel_init=nn.initializers.normal(0.001), name='fc')


class InceptionV3(layers.ConvNet):
  """Inception-v3 for 299×299 inputs (75×75 at least).

  Attributes:
    num_classes: logits.
    dropout_rate: > 0 adds a `MaskedDropout` before the classifier
      (torchvision: 0.5); default 0, the deterministic network.
    conv_impl, act: see `layers.ConvNet` (keyword-only); `act` is every
      BasicConv's.
  """
  num_classes: int = 10
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    block = functools.partial(InceptionBlock, conv_impl=self.conv_impl, act=self.act)
    x = _run(x, _STEM, train, self.conv_impl, self.act)
    for name, branches in _MIXED_5_6:
      x = block(branches, name=name)(x, train)
    if train or self.is_initializing():
      aux = InceptionAux(self.num_classes, conv_impl=self.conv_impl, act=self.act,
                         name='AuxLogits')(x, train)
      self.sow('intermediates', 'aux_logits', aux)
    for name, branches in _MIXED_7:
      x = block(branches, name=name)(x, train)
    return layers.classifier(jnp.mean(x, axis=(1, 2)), self.num_classes,
                             dropout_rate=self.dropout_rate, kernel_init=_weight_init, name='fc')
