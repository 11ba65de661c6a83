"""Layers shared by the model zoo: dropout whose mask is data, fast small convs,
and the units every network is built from.

Dropout masks live in the variable collection ``'dropout_masks'`` instead of
being drawn from an RNG inside the layer. The client samples them from its key
(`sample_masks`), the attacker passes any array it likes (DIA optimises them),
and both run the same forward pass. Without the collection the layer is the
identity, i.e. the deterministic model.

The units (`conv_bn`, `norm_act`, `classifier`) are functions, not modules:
called inside a network's compact method, the layers they make are that
network's own submodules, auto-named ('Conv_0', 'BatchNorm_1', 'Dense_2') as
if the network had made them itself. So the parameter trees stay those of the
torchvision layouts (and of saved checkpoints) while no network spells a unit
out again.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.errors import ConfigError
from dlg_jax.models import convolution
from dlg_jax.models import matmul

MASKS = 'dropout_masks'

Activation = Callable[[jax.Array], jax.Array]

_ACTIVATIONS: dict[str, Activation] = {
    'sigmoid': nn.sigmoid, 'relu': nn.relu, 'tanh': jnp.tanh,
    'gelu': nn.gelu, 'swish': nn.swish, 'elu': nn.elu,
}


def activation(name: str) -> Activation:
  """Looks an activation up by name, listing the choices on a miss.

  >>> float(activation('relu')(jnp.array(-1.0)))
  0.0
  """
  if name not in _ACTIVATIONS:
    raise ConfigError(f'unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}.')
  return _ACTIVATIONS[name]


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
      raise ConfigError(f'dropout rate must be in [0, 1), got {self.rate}.')
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
  """A 2-D convolution computed as im2col + one matmul, or by XLA's conv
  (`models.convolution`, derivatives in XLA:CPU's fast layout).

  Why two: on the LeNets' tiny double-backward shapes strided slices + a
  matmul stay faster on CPU (1.06 vs 1.46 ms per DLG evaluation per victim,
  BUILD_NOTES.md); the deep nets use XLA's. Parameters are named and shaped
  exactly as `flax.linen.Conv`'s ('kernel' HWIO, 'bias'), so the two are
  interchangeable.
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
      raise ConfigError(
          f"padding must be 'SAME', 'VALID' or an int, got {self.padding!r}.")
    y = conv(x, kernel, self.strides, pad, self.impl)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,))
    return y


def conv(x: jax.Array, kernel: jax.Array, strides: int,
         pad: tuple[tuple[int, int], tuple[int, int]], impl: str) -> jax.Array:
  """`Conv`'s computation on an HWIO `kernel`: im2col + one matmul, or XLA's conv.

  >>> conv(jnp.ones((1, 3, 3, 1)), jnp.ones((3, 3, 1, 1)), 1, ((1, 1), (1, 1)), 'xla')[0, 1, 1, 0]
  Array(9., dtype=float32)
  """
  kh, kw, cin, features = kernel.shape
  if impl == 'im2col':
    return matmul.dot_general(im2col(x, (kh, kw), strides, pad),
                              kernel.reshape(kh * kw * cin, features), (((3,), (0,)), ((), ())))
  if impl == 'xla':
    return convolution.conv(x, kernel, (strides, strides), tuple(map(tuple, pad)))
  raise ConfigError(f"conv impl must be 'im2col' or 'xla', got {impl!r}.")


def _same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
  # TF's rule; with stride 2 it pads (1, 2) where PyTorch's k//2 pads (2, 2).
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return total // 2, total - total // 2


class ConvNet(nn.Module, kw_only=True):
  """Base of the BatchNorm conv nets and their blocks: the options they share.

  Keyword-only, so that a subclass's own fields keep their positions. A
  subclass must not redeclare them (that would make them positional again).

  Attributes:
    conv_impl: 'xla' (default) or 'im2col' (see `Conv`). XLA's conv here: on
      these deep nets im2col compiled ~1.3× slower, stepped only ~10% faster
      on CPU (ResNet-18, 32×32 gradient matching) and holds k×k copies of
      every activation.
    act: activation name (see `activation`), used everywhere torchvision has
      ReLU; 'sigmoid' is Khowaja's study (configs/models_study.py).
  """
  conv_impl: str = 'xla'
  act: str = 'relu'


def batch_norm(train: bool, *, epsilon: float = 1e-5, name: str | None = None) -> nn.BatchNorm:
  """PyTorch's BatchNorm2d: batch statistics when `train`, else running ones.

  torchvision's momentum 0.1 is flax's 0.9 (flax weighs the old average).
  """
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=epsilon, name=name)


def norm_act(x: jax.Array, train: bool, act: Activation, *,
             name: str | None = None) -> jax.Array:
  """BatchNorm then `act` (a pre-activation net's order); call in a compact method."""
  return act(batch_norm(train, name=name)(x))


def conv_bn(x: jax.Array, features: int, kernel_size: int | tuple[int, int], *, train: bool,
            kernel_init: Any, impl: str, strides: int = 1, padding: str | int | None = None,
            act: Activation | None = None, epsilon: float = 1e-5,
            names: tuple[str | None, str | None] = (None, None)) -> jax.Array:
  """conv (no bias) – BatchNorm – `act`: the unit of the zoo's BatchNorm nets.

  Call it inside a compact method: the conv and the norm are the caller's
  submodules, named by `names` (conv, norm) or else auto-named.

  Args:
    x: (N, H, W, C) maps.
    features: output channels.
    kernel_size: k (square) or (kh, kw).
    train: BatchNorm on the batch's statistics (see `batch_norm`).
    kernel_init: the conv kernel's initialiser.
    impl: `Conv`'s implementation, 'im2col' or 'xla'.
    strides: the conv's stride.
    padding: as `Conv`'s; None pads a square kernel by k // 2 (PyTorch's).
    act: applied last; None leaves the unit linear (a residual's last conv).
    epsilon: BatchNorm's (PyTorch's 1e-5; Inception's 1e-3).
    names: (conv, norm) submodule names; None auto-names.

  Returns:
    The unit's (N, H', W', features) output.
  """
  if isinstance(kernel_size, int):
    kernel_size = (kernel_size, kernel_size)
  if padding is None:
    if kernel_size[0] != kernel_size[1]:
      raise ConfigError(f'padding=None needs a square kernel, got {kernel_size}.')
    padding = kernel_size[0] // 2
  conv_name, norm_name = names
  x = Conv(features, kernel_size, strides=strides, padding=padding, use_bias=False,
           kernel_init=kernel_init, impl=impl, name=conv_name)(x)
  x = batch_norm(train, epsilon=epsilon, name=norm_name)(x)
  return x if act is None else act(x)


def classifier(x: jax.Array, num_classes: int, *, dropout_rate: float = 0.0,
               name: str | None = None, **dense_kwargs: Any) -> jax.Array:
  """Features (N, D) -> logits: a 'dropout' site when `dropout_rate` > 0, then dense.

  Every zoo model ends here (after its global pool or flatten), so that its
  dropout before the classifier is the same `MaskedDropout` site. Call it in a
  compact method; `name` and `dense_kwargs` (initialisers, `use_bias`) go to
  the `nn.Dense`.
  """
  if dropout_rate > 0:
    x = MaskedDropout(dropout_rate, name='dropout')(x)
  return dense(num_classes, name=name, **dense_kwargs)(x)


def dense(features: int, **kwargs: Any) -> nn.Dense:
  """`nn.Dense` (same parameters, same auto-names) whose matmul is `models.matmul`'s.

  Why: its second backward pass reads the weights along their rows; with
  XLA's own, IG on the MLP took 37 ms per iteration on one core, with it
  10 ms (BUILD_NOTES.md). The zoo builds every dense layer here.
  """
  return nn.Dense(features, dot_general=matmul.dot_general, **kwargs)
