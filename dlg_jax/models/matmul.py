"""A dense layer's matmul whose derivatives of every order read the weights row by row.

Why this module exists: gradient matching differentiates a dense layer
twice. Under JAX's own rules the second backward pass of `x @ kernel`
contracts the cotangent of ∇kernel (an in × out matrix, as large as the
kernel) over its first dimension, so XLA:CPU materialises that cotangent
transposed, in one loop fusion that also recomputes the whole elementwise
chain of the distance per entry. On the MLP (3,072 × 1,024 first layer) that
one fusion was 28 of IG's 37 ms per iteration on one core, and PyTorch was
faster (docs/results/models_speed.md).

As in `convolution`, the three linear maps of a matmul,

* `matmul(x, k)`: x @ k, the forward pass,
* `input_grad(g, k)`: g @ kᵀ, its transpose in x,
* `kernel_grad(x, g)`: xᵀ @ g, its transpose in k,

are each other's VJPs, and each is written so that every weight-sized
operand (k, or ∇k's cotangent) is contracted over its last, contiguous
dimension: k @ gᵀ instead of g @ kᵀ, and only the small (batch-sized)
operands get transposed. Reverse mode only (no `jax.jvp`); `vmap` batches
them as `lax.dot_general` (batch dimensions, no copies).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def _t(a: jax.Array) -> jax.Array:
  return jnp.swapaxes(a, -1, -2)


def _opaque(x: jax.Array) -> jax.Array:
  # Keeps XLA from folding the small transpose into the dot's dimension
  # numbers, which would move the transpose onto the weight-sized operand.
  return jax.lax.optimization_barrier(x)


def _saving_inputs(f: jax.custom_vjp, bwd: Any) -> None:
  # All three maps are bilinear: the VJP needs only the two inputs.
  f.defvjp(lambda a, b: (f(a, b), (a, b)), bwd)


@jax.custom_vjp
def matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """x @ kernel for x (n, in) and kernel (in, out).

  >>> x, k = jnp.arange(6.).reshape(2, 3), jnp.ones((3, 4))
  >>> matmul(x, k)[:, 0]
  Array([ 3., 12.], dtype=float32)
  >>> bool(jnp.allclose(jax.grad(lambda x: jnp.sum(jnp.sin(matmul(x, k))))(x),
  ...                   jax.grad(lambda x: jnp.sum(jnp.sin(x @ k)))(x)))
  True
  """
  return x @ kernel


def _matmul_bwd(res, g):
  x, kernel = res
  return input_grad(g, kernel), kernel_grad(x, g)


_saving_inputs(matmul, _matmul_bwd)


@jax.custom_vjp
def input_grad(g: jax.Array, kernel: jax.Array) -> jax.Array:
  """g @ kernelᵀ, as (kernel @ gᵀ)ᵀ: the kernel read along its rows."""
  return _t(kernel @ _opaque(_t(g)))


def _input_grad_bwd(res, ct):
  g, kernel = res
  return matmul(ct, kernel), kernel_grad(ct, g)


_saving_inputs(input_grad, _input_grad_bwd)


@jax.custom_vjp
def kernel_grad(x: jax.Array, g: jax.Array) -> jax.Array:
  """xᵀ @ g: the (in, out) gradient of the kernel, summed over the batch."""
  return _opaque(_t(x)) @ g


def _kernel_grad_bwd(res, ct):
  x, g = res
  return input_grad(g, ct), matmul(x, ct)


_saving_inputs(kernel_grad, _kernel_grad_bwd)


def dot_general(lhs: jax.Array, rhs: jax.Array, dimension_numbers: Any,
                precision: Any = None, preferred_element_type: Any = None) -> jax.Array:
  """`lax.dot_general` for `flax.linen.Dense(dot_general=...)`: its one contraction
  (lhs's last dimension with the kernel's first) goes through `matmul`."""
  del precision, preferred_element_type
  (lc, rc), (lb, rb) = dimension_numbers
  if tuple(lc) != (lhs.ndim - 1,) or tuple(rc) != (0,) or lb or rb or rhs.ndim != 2:
    raise ValueError(f'matmul.dot_general takes a dense layer\'s contraction, got '
                     f'{dimension_numbers} for shapes {lhs.shape} x {rhs.shape}.')
  flat = lhs.reshape(-1, lhs.shape[-1])
  return matmul(flat, rhs).reshape(*lhs.shape[:-1], rhs.shape[-1])
