"""XLA's 2-D convolution with derivatives of every order in XLA:CPU's fast layout.

Why this module exists: XLA's CPU backend runs a convolution on its fast
kernels (Eigen/YNNPACK, ≈100 GFLOP/s on one core here) only in one layout,
NHWC input × HWIO kernel → NHWC, and it rewrites other layouts into that one
only in the entry computation of a program (`ConvCanonicalization`). The
convolutions that JAX's own transpose rules emit for ∇x and ∇kernel are in
other layouts, and every attack runs its steps inside a `while_loop` body,
where those fall to an unoptimised loop: one IG step on ResNet-18 (32 px, one
core) took 0.72 s inside a loop against 0.20 s unrolled
(docs/results/models_speed.md).

Gradient matching differentiates twice, so the fix has to hold at every
order. The three linear maps of a convolution,

* `conv(x, k)`: the forward pass,
* `input_grad(g, k)`: its transpose in x (∇x of ⟨g, conv(x, k)⟩),
* `kernel_grad(x, g)`: its transpose in k (∇k of ⟨g, conv(x, k)⟩),

are each other's derivatives: the VJP of each is a pair of the other two.
Each is a `custom_vjp` that says so, and each is one XLA convolution in the
fast layout on explicitly transposed operands, so autodiff never builds a
convolution in another layout, to any order. Reverse mode only (no
`jax.jvp`); `vmap` batches them as XLA's conv.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Pad = tuple[tuple[int, int], tuple[int, int]]
Stride = tuple[int, int]
HW = tuple[int, int]

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _opaque(x: jax.Array) -> jax.Array:
  # XLA folds a transpose or a reverse into the convolution that reads it
  # (TransposeFolding, AlgebraicSimplifier), which undoes the fast layout;
  # a barrier keeps it a separate op. ResNet-18's stage-4 ∇x: 6.5 → 1.0 ms.
  return jax.lax.optimization_barrier(x)


def _xla(x: jax.Array, k: jax.Array, pad, lhs_dilation: Stride = (1, 1),
         rhs_dilation: Stride = (1, 1), strides: Stride = (1, 1)) -> jax.Array:
  return jax.lax.conv_general_dilated(x, k, strides, pad, lhs_dilation, rhs_dilation,
                                      dimension_numbers=_NHWC)


def _dilated(size: int, dilation: int) -> int:
  return 0 if size == 0 else (size - 1) * dilation + 1


def _transpose_pads(in_hw: HW, k_hw: HW, out_hw: HW, strides: Stride,
                    pad: Pad) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
  """The paddings of ∇x and ∇k of a strided, padded convolution (JAX's rules
  for `lax.conv_general_dilated`'s transposes, without dilations)."""
  pad_x, pad_k = [], []
  for n, k, o, s, (lo, _) in zip(in_hw, k_hw, out_hw, strides, pad):
    o_dil = _dilated(o, s)
    before = k - lo - 1
    pad_x.append((before, n + k - 1 - o_dil - before))
    pad_k.append((lo, (o_dil - n) + (k - lo - 1)))
  return pad_x, pad_k


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x: jax.Array, kernel: jax.Array, strides: Stride, pad: Pad) -> jax.Array:
  """`lax.conv_general_dilated(x, kernel, strides, pad)`, NHWC × HWIO → NHWC.

  >>> x, k = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5))
  >>> y = conv(x, k, (2, 2), ((1, 1), (1, 1)))
  >>> y.shape, float(y[0, 1, 1, 0])
  ((1, 2, 2, 5), 18.0)
  >>> ref = jax.grad(lambda x: jnp.sum(jnp.sin(jax.lax.conv_general_dilated(
  ...     x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_NHWC))))(x)
  >>> bool(jnp.allclose(jax.grad(lambda x: jnp.sum(jnp.sin(
  ...     conv(x, k, (2, 2), ((1, 1), (1, 1))))))(x), ref))
  True
  """
  return _batched(_conv_xla, strides, pad, None, folds=True)(x, kernel)


def _conv_xla(x, kernel, strides, pad, hw):
  del hw
  return _xla(x, kernel, pad, strides=strides)


def _conv_fwd(x, kernel, strides, pad):
  return conv(x, kernel, strides, pad), (x, kernel)


def _conv_bwd(strides, pad, res, g):
  x, kernel = res
  return (input_grad(g, kernel, strides, pad, x.shape[1:3]),
          kernel_grad(x, g, strides, pad, kernel.shape[:2]))


conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def input_grad(g: jax.Array, kernel: jax.Array, strides: Stride, pad: Pad,
               in_hw: HW) -> jax.Array:
  """∇x of ⟨g, conv(x, kernel)⟩ for an x of spatial size `in_hw`.

  The flipped kernel, its in and out channels swapped, over g dilated by the
  stride.
  """
  return _batched(_input_grad_xla, strides, pad, in_hw, folds=True)(g, kernel)


def _input_grad_xla(g, kernel, strides, pad, in_hw):
  pad_x, _ = _transpose_pads(in_hw, kernel.shape[:2], g.shape[1:3], strides, pad)
  flipped = _opaque(jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
  return _xla(g, flipped, pad_x, lhs_dilation=strides)


def _input_grad_fwd(g, kernel, strides, pad, in_hw):
  return input_grad(g, kernel, strides, pad, in_hw), (g, kernel)


def _input_grad_bwd(strides, pad, in_hw, res, ct):
  g, kernel = res
  del in_hw
  return conv(ct, kernel, strides, pad), kernel_grad(ct, g, strides, pad, kernel.shape[:2])


input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def kernel_grad(x: jax.Array, g: jax.Array, strides: Stride, pad: Pad,
                k_hw: HW) -> jax.Array:
  """∇kernel of ⟨g, conv(x, kernel)⟩ for a kernel of spatial size `k_hw`.

  x's channels as the batch and its batch as the channels, g as the kernel
  (dilated by the stride): an (in, kh, kw, out) NHWC output, transposed.
  """
  return _batched(_kernel_grad_xla, strides, pad, k_hw, folds=False)(x, g)


def _kernel_grad_xla(x, g, strides, pad, k_hw):
  _, pad_k = _transpose_pads(x.shape[1:3], k_hw, g.shape[1:3], strides, pad)
  dk = _xla(_opaque(x.transpose(3, 1, 2, 0)), _opaque(g.transpose(1, 2, 0, 3)), pad_k,
            rhs_dilation=strides)
  return dk.transpose(1, 2, 0, 3)


@functools.lru_cache(maxsize=None)
def _batched(compute, strides: Stride, pad: Pad, hw: HW | None, *, folds: bool):
  """`compute(a, b, strides, pad, hw)` whose `vmap` keeps XLA:CPU's fast kernels.

  XLA's batching rule turns a batched kernel (one per victim) into a grouped
  convolution, which XLA:CPU runs by expanding the kernel block-diagonally
  (V× the work and a V×-wide kernel copy) or in no fast kernel at all
  (ResNet-18 IG, blocks of 4: 7.6 s per victim-iteration against 0.26 s for
  one victim). Here a batched `b` (the kernel, or g in `kernel_grad`) loops
  over the batch (`lax.map`), and an unbatched one with `folds` folds the
  batch into the images' batch: one convolution as large as the block.
  """
  def call(a, b):
    return compute(a, b, strides, pad, hw)

  @jax.custom_batching.custom_vmap
  def batched(a, b):
    return call(a, b)

  @batched.def_vmap
  def _rule(axis_size, in_batched, a, b):
    if folds and in_batched[0] and not in_batched[1]:
      out = batched(a.reshape(-1, *a.shape[2:]), b)
      return out.reshape(axis_size, -1, *out.shape[1:]), True
    a, b = (v if hit else jnp.broadcast_to(v, (axis_size, *v.shape))
            for v, hit in zip((a, b), in_batched))
    return jax.lax.map(lambda ab: batched(*ab), (a, b)), True

  return batched


def _kernel_grad_fwd(x, g, strides, pad, k_hw):
  return kernel_grad(x, g, strides, pad, k_hw), (x, g)


def _kernel_grad_bwd(strides, pad, k_hw, res, ct):
  x, g = res
  del k_hw
  return input_grad(g, ct, strides, pad, x.shape[1:3]), conv(x, ct, strides, pad)


kernel_grad.defvjp(_kernel_grad_fwd, _kernel_grad_bwd)


def depthwise(x: jax.Array, kernel: jax.Array, strides: Stride, pad: Pad) -> jax.Array:
  """A depthwise convolution (one filter per channel) as shifted products.

  `kernel` is HWIO with I = 1 and O = the channels of `x` (flax's grouped
  layout). The sum over the kernel's taps of strided slices of the padded
  input times each tap's per-channel weights: slices, pads and products,
  whose derivatives of every order are more of the same, so no grouped
  convolution (which XLA:CPU runs in its unoptimised loop inside an attack's
  `while_loop`) appears in any derivative.

  >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  >>> depthwise(x, jnp.ones((3, 3, 1, 1)), (1, 1), ((1, 1), (1, 1)))[0, 1, 1, 0]
  Array(45., dtype=float32)
  """
  kh, kw, _, channels = kernel.shape
  if kernel.shape[2] != 1 or x.shape[-1] != channels:
    raise ValueError(f'depthwise needs an (h, w, 1, C) kernel for C = {x.shape[-1]} input '
                     f'channels, got kernel shape {kernel.shape}.')
  padded = jnp.pad(x, ((0, 0), *pad, (0, 0)))
  n, h, w, _ = padded.shape
  out_h = (h - kh) // strides[0] + 1
  out_w = (w - kw) // strides[1] + 1
  total = None
  for i in range(kh):
    for j in range(kw):
      tap = jax.lax.slice(padded, (0, i, j, 0),
                          (n, i + strides[0] * (out_h - 1) + 1, j + strides[1] * (out_w - 1) + 1,
                           channels), (1, strides[0], strides[1], 1)) * kernel[i, j, 0]
      total = tap if total is None else total + tap
  return total


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None):
  """`lax.conv_general_dilated` for flax's `nn.Conv`, depthwise ones as `depthwise`.

  Pass it as `nn.Conv(..., conv_general_dilated=convolution.conv_general_dilated)`:
  the module keeps its parameters and names, and a depthwise convolution
  (groups = channels, NHWC × HWIO, explicit pads, no dilation) runs as
  shifted products; anything else is `lax.conv_general_dilated` unchanged.
  """
  plain = functools.partial(jax.lax.conv_general_dilated, lhs, rhs, window_strides, padding,
                            lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                            dimension_numbers=dimension_numbers,
                            feature_group_count=feature_group_count, precision=precision)
  nhwc = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  undilated = all(d == 1 for d in (lhs_dilation or (1, 1)) + (rhs_dilation or (1, 1)))
  if (lhs.ndim != 4 or feature_group_count == 1 or feature_group_count != lhs.shape[-1]
      or rhs.shape[2] != 1 or isinstance(padding, str) or not undilated
      or jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != nhwc):
    return plain()
  return depthwise(lhs, rhs, tuple(window_strides), tuple(map(tuple, padding)))
