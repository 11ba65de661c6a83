"""A small Vision Transformer for 32×32 images, like the one DIA attacks.

The architecture is lucidrains' vit-pytorch, which the DIA code
(dAI-SY-Group/DropoutInversionAttack, `src/models/vit.py`) uses: 4×4 patches
flattened and embedded by one dense layer, a learned CLS token and position
embedding (both N(0, 1) at init, as there), pre-LayerNorm blocks, qkv without
bias, and LayerNorm + dense on the CLS token's final state (``pool='mean'``
drops the CLS token and averages the patch tokens instead). Defaults: width
256, depth 4, 8 heads of 32 dimensions (heads × head dim = width), MLP dim
512. DIA's own config
(`example_configs/models/ViT.yaml`) is ``num_heads=16, mlp_dim=256,
dropout_rate=0.25``.

Dropout sites, each a `MaskedDropout` present when ``dropout_rate > 0``, are
DIA's (one rate for all):
  * 'embedding_dropout' on the tokens after the position embedding;
  * 'block{i}/attention/dropout' on the attention probabilities (N, heads, T, T);
  * 'block{i}/attention/out_dropout' after the attention's output projection;
  * 'block{i}/mlp_dropout1' after the MLP's activation and
    'block{i}/mlp_dropout2' after its output projection.
Attention is written out (not `nn.MultiHeadDotProductAttention`) so that the
site on the attention probabilities is a variable like every other mask.

References:
  Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021.
  Scheliga et al., "Dropout is NOT All You Need to Prevent Gradient Leakage",
  AAAI 2023.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.errors import ConfigError
from dlg_jax.models import layers
from dlg_jax.models import order


class SelfAttention(nn.Module):
  """Multi-head self-attention with a dropout site on its probabilities."""
  num_heads: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n, t, width = x.shape
    if width % self.num_heads:
      raise ConfigError(f'width {width} is not divisible by {self.num_heads} heads.')
    head_dim = width // self.num_heads
    qkv = layers.dense(3 * width, use_bias=False, name='qkv')(x)
    qkv = qkv.reshape(n, t, 3, self.num_heads, head_dim)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (N, H, T, D)
    probs = nn.softmax(q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(head_dim), axis=-1)
    if self.dropout_rate > 0:
      probs = layers.MaskedDropout(self.dropout_rate, name='dropout')(probs)
    y = (probs @ v).transpose(0, 2, 1, 3).reshape(n, t, width)
    y = layers.dense(width, name='out')(y)
    if self.dropout_rate > 0:
      y = layers.MaskedDropout(self.dropout_rate, name='out_dropout')(y)
    return y


class EncoderBlock(nn.Module):
  """x + attention(LN(x)); x + MLP(LN(x))."""
  num_heads: int
  mlp_dim: int
  act: str = 'gelu'
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + SelfAttention(self.num_heads, self.dropout_rate, name='attention')(
        nn.LayerNorm(name='norm1')(x))
    y = layers.dense(self.mlp_dim, name='mlp1')(nn.LayerNorm(name='norm2')(x))
    y = layers.activation(self.act)(y)
    if self.dropout_rate > 0:
      y = layers.MaskedDropout(self.dropout_rate, name='mlp_dropout1')(y)
    y = layers.dense(x.shape[-1], name='mlp2')(y)
    if self.dropout_rate > 0:
      y = layers.MaskedDropout(self.dropout_rate, name='mlp_dropout2')(y)
    return x + y


class ViT(nn.Module):
  """ViT; the defaults are the small CIFAR model described above.

  Attributes:
    num_classes: logits.
    patch_size: side of the square patches; must divide the image size.
    width: token dimension.
    depth: encoder blocks.
    num_heads: attention heads (width / num_heads dimensions each).
    mlp_dim: hidden units of each block's MLP.
    pool: 'cls' (a learned CLS token) or 'mean' (mean of the patch tokens).
    act: MLP activation name (see `layers.activation`; 'gelu' is flax's tanh
      approximation).
    dropout_rate: > 0 adds the dropout sites listed in the module docstring.
    scan_blocks: runs the blocks as one `lax.scan` (`_scanned`), so that
      the program does not grow with `depth`; False: unrolled, one copy per
      block. Same variables and results either way. Off by default: at the
      zoo's depth 4 the scan costs 1.3× per evaluation and compiles slower
      (6.1 vs 4.3 s); at depth 12 it halves the program and compiles faster
      (7.4 vs 9.7 s; BUILD_NOTES.md, "Model zoo").
  """
  num_classes: int = 10
  patch_size: int = 4
  width: int = 256
  depth: int = 4
  num_heads: int = 8
  mlp_dim: int = 512
  pool: str = 'cls'
  act: str = 'gelu'
  dropout_rate: float = 0.0
  scan_blocks: bool = False

  def _scanned(self, x: jax.Array, names: list[str]) -> jax.Array:
    """The encoder blocks as one `lax.scan`: the program holds one block, not `depth`.

    Each block's variables keep their names and shapes (`init` builds them
    unrolled, as `EncoderBlock`s); here they are read, stacked along a new
    axis and scanned over with the same `EncoderBlock` applied as a pure
    function, so logits, gradients and masks are the unrolled blocks'.
    """
    block = EncoderBlock(self.num_heads, self.mlp_dim, self.act, self.dropout_rate, parent=None)
    per_block, ranks = [], None
    for name in names:
      own = {'params': self.variables['params'][name]}
      masks = self.variables.get(layers.MASKS, {})
      if name in masks:
        own[layers.MASKS] = masks[name]
      # Each variable read once per block, block after block, in the block's
      # forward order: `order.use_order` (IG's per-layer weights) then
      # sees the unrolled order, where a stack alone reads all blocks at once.
      if ranks is None:  # the same for every block
        ranks = order.use_order(lambda v: block.apply(v, x), own)
      per_block.append(order.in_use_order(own, ranks))
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *per_block)
    x, _ = jax.lax.scan(lambda h, v: (block.apply(v, h), None), x, stacked)
    return x

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no batch statistics in this model
    if self.pool not in ('cls', 'mean'):
      raise ConfigError(f"pool must be 'cls' or 'mean', got {self.pool!r}.")
    x = _patchify(x, self.patch_size)
    x = layers.dense(self.width, name='patch_embedding')(x)
    if self.pool == 'cls':
      cls = self.param('cls', nn.initializers.normal(1.0), (1, 1, self.width))
      x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.width)), x], axis=1)
    x = x + self.param('pos_embedding', nn.initializers.normal(1.0), x.shape[1:])
    if self.dropout_rate > 0:
      x = layers.MaskedDropout(self.dropout_rate, name='embedding_dropout')(x)
    names = [f'block{i + 1}' for i in range(self.depth)]
    if self.scan_blocks and not self.is_initializing():
      x = self._scanned(x, names)
    else:  # init creates each block's variables under its own name
      for name in names:
        x = EncoderBlock(self.num_heads, self.mlp_dim, self.act, self.dropout_rate,
                         name=name)(x)
    x = x[:, 0] if self.pool == 'cls' else jnp.mean(x, axis=1)
    return layers.classifier(nn.LayerNorm(name='norm')(x), self.num_classes, name='head')


def _patchify(x: jax.Array, patch: int) -> jax.Array:
  """(N, H, W, C) -> (N, H/p * W/p, p*p*C), patches in row-major order."""
  n, h, w, c = x.shape
  if h % patch or w % patch:
    raise ConfigError(f'image size {h}×{w} is not divisible by patch size {patch}.')
  x = x.reshape(n, h // patch, patch, w // patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, (h // patch) * (w // patch), patch * patch * c)
