"""Layers shared by the model zoo: dropout whose mask is data, fast small convs.

Dropout masks live in the variable collection ``'dropout_masks'`` instead of
being drawn from an RNG inside the layer. The client samples them from its key
(`sample_masks`), the attacker passes any array it likes (DIA optimises them),
and both run the same forward pass. Without the collection the layer is the
identity, i.e. the deterministic model.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

MASKS = 'dropout_masks'


class MaskedDropout(nn.Module):
  """Inverted dropout ``x * mask / (1 - rate)`` with the mask as a variable.

  The mask has the full activation shape (per example and per unit), as in the
  client's own dropout and in DIA. A relaxed mask in [0, 1] is allowed.

  References:
    Srivastava et al., "Dropout", JMLR 2014.
    Scheliga et al., "Dropout is NOT All You Need to Prevent Gradient Leakage",
    AAAI 2023 (masks as optimisation variables).
  """
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if not 0.0 <= self.rate < 1.0:
      raise ValueError(f'dropout rate must be in [0, 1), got {self.rate}.')
    if self.is_initializing():
      # Record the site and its shape; the template is all ones (keep all).
      self.variable(MASKS, 'mask', jnp.ones, x.shape, x.dtype)
      return x
    if not self.has_variable(MASKS, 'mask'):
      return x
    mask = self.get_variable(MASKS, 'mask')
    return x * mask.astype(x.dtype) / (1.0 - self.rate)


def sample_masks(key: jax.Array, template: Any, rate: float) -> Any:
  """Draws Bernoulli(1 - rate) keep-masks shaped like `template`.

  Each site gets its own key folded from its position in the pytree, so the
  masks are reproducible from `key` alone.
  """
  leaves, treedef = jax.tree.flatten(template)
  keys = [jax.random.fold_in(key, i) for i in range(len(leaves))]
  drawn = [jax.random.bernoulli(k, 1.0 - rate, leaf.shape).astype(leaf.dtype)
           for k, leaf in zip(keys, leaves)]
  return jax.tree.unflatten(treedef, drawn)


Padding = tuple[tuple[int, int], tuple[int, int]]


def im2col(x: jax.Array, kernel_size: tuple[int, int], stride: int,
           padding: Padding) -> jax.Array:
  """Patches by strided slices: (N, H, W, C) -> (N, OH, OW, KH*KW*C).

  The order (ky, kx, c) matches an HWIO kernel reshaped to (KH*KW*C, O).
  `im2col` and `col2im` are each other's transpose and say so to autodiff
  (custom VJPs): differentiating slices natively gives one pad-and-add kernel
  per kernel tap, ×25 memory traffic, in every order of derivative that
  gradient matching takes (BUILD_NOTES.md).
  """
  return _im2col(x, kernel_size, stride, padding, tuple(x.shape[1:3]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _im2col(x, kernel_size, stride, padding, in_hw):
  del in_hw  # only the VJP needs it
  kh, kw = kernel_size
  x = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  oh = (x.shape[1] - kh) // stride + 1
  ow = (x.shape[2] - kw) // stride + 1
  cols = [x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
          for i in range(kh) for j in range(kw)]
  return jnp.concatenate(cols, axis=-1)


def col2im(cols: jax.Array, kernel_size: tuple[int, int], stride: int, padding: Padding,
           in_hw: tuple[int, int]) -> jax.Array:
  """The transpose of `im2col`: adds every patch back where it came from."""
  return _col2im(cols, kernel_size, stride, padding, in_hw)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _col2im(cols, kernel_size, stride, padding, in_hw):
  kh, kw = kernel_size
  n, oh, ow, _ = cols.shape
  c = cols.shape[-1] // (kh * kw)
  (pt, _), (pl, _) = padding
  h, w = in_hw
  d = cols.reshape(n, oh, ow, kh * kw, c)
  zero = jnp.zeros((), d.dtype)
  # Each tap goes back by one (possibly cropping, i.e. negative) pad that also
  # dilates by the stride; XLA fuses the 25 pads and adds into one loop that
  # reads `cols` once. (Padding one dilated buffer for all taps and slicing it
  # wrote a buffer 4-9x the size of `cols`: measured slower, BUILD_NOTES.md.)
  out = None
  for i in range(kh):
    for j in range(kw):
      lo_h, lo_w = i - pt, j - pl
      tap = jax.lax.pad(d[:, :, :, i * kw + j, :], zero, (
          (0, 0, 0),
          (lo_h, h - lo_h - stride * (oh - 1) - 1, stride - 1),
          (lo_w, w - lo_w - stride * (ow - 1) - 1, stride - 1),
          (0, 0, 0)))
      out = tap if out is None else out + tap
  return out


def _im2col_fwd(x, kernel_size, stride, padding, in_hw):
  return _im2col(x, kernel_size, stride, padding, in_hw), None


def _im2col_bwd(kernel_size, stride, padding, in_hw, res, g):
  del res
  return (col2im(g, kernel_size, stride, padding, in_hw),)


def _col2im_fwd(cols, kernel_size, stride, padding, in_hw):
  return _col2im(cols, kernel_size, stride, padding, in_hw), None


def _col2im_bwd(kernel_size, stride, padding, in_hw, res, g):
  del res, in_hw
  return (im2col(g, kernel_size, stride, padding),)


_im2col.defvjp(_im2col_fwd, _im2col_bwd)
_col2im.defvjp(_col2im_fwd, _col2im_bwd)


class Conv(nn.Module):
  """A 2-D convolution computed as im2col + one matmul (or by XLA's conv).

  Why: on CPU, XLA's convolution is slow for the tiny double-backward shapes
  that gradient matching produces; strided slices + a matmul were measured
  ≈2.9× faster (BUILD_NOTES.md). Parameters are named and shaped exactly as
  `flax.linen.Conv`'s ('kernel' HWIO, 'bias'), so the two are interchangeable.
  """
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: int = 1
  padding: str | int = 'SAME'  # or a symmetric pad, like PyTorch's padding=k//2
  use_bias: bool = True
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros
  impl: str = 'im2col'  # or 'xla'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = self.kernel_size
    cin = x.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (kh, kw, cin, self.features))
    if self.padding == 'SAME':
      pad = tuple(_same_padding(size, k, self.strides) for size, k in
                  zip(x.shape[1:3], self.kernel_size))
    elif self.padding == 'VALID':
      pad = ((0, 0), (0, 0))
    elif isinstance(self.padding, int):
      pad = ((self.padding, self.padding),) * 2
    else:
      raise ValueError(
          f"padding must be 'SAME', 'VALID' or an int, got {self.padding!r}.")
    if self.impl == 'im2col':
      cols = im2col(x, tuple(self.kernel_size), self.strides, pad)
      y = cols @ kernel.reshape(kh * kw * cin, self.features)
    elif self.impl == 'xla':
      y = jax.lax.conv_general_dilated(
          x, kernel, (self.strides, self.strides), pad,
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    else:
      raise ValueError(f"conv impl must be 'im2col' or 'xla', got {self.impl!r}.")
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,))
    return y


def _same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
  # TF's rule; with stride 2 it pads (1, 2) where PyTorch's k//2 pads (2, 2).
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return total // 2, total - total // 2
