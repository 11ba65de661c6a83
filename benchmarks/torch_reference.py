"""A short PyTorch reference of the zoo's attack steps, for like-with-like timing.

Written from the papers' definitions, not from dlg_jax's code: the same
architectures (torch layouts: NCHW, OIHW kernels, (out, in) dense weights),
loaded with the *same weights* as a dlg_jax model (`load_flax`), the same
client loss (mean cross-entropy of one-hot labels), the same matching losses
and the same steps:

* IG (Geiping et al. 2020): 1 − cosine similarity of the two parameter
  gradients flattened over all layers, + tv × TV(x̂) with dlg_jax's TV
  (mean |horizontal difference| + mean |vertical difference|); Adam (lr 0.1)
  on the *sign* of ∇x, pixels clamped to [0, 1] after each step.
* DLG / Khowaja (Zhu et al. 2019): Σ squared differences of the gradients;
  `torch.optim.LBFGS` (lr 1, history 100, max_iter 20, no line search: the
  DLG code's call).

`check_gradients` compares ∇x of the matching loss in torch with dlg_jax's
(`losses.matching_loss` through `protocol.observe`) on one random image; the
benchmark (`models_speed.py`) times nothing whose check fails.

Models mirrored: DLG LeNet, LeNet-5, MLP, ResNet-18 (CIFAR and ImageNet
stems, any activation), ViT-small, MobileNetV2, DenseNet-121, Inception-v3
(its branch tables read from dlg_jax; see `InceptionV3`). Dropout variants
raise `NotMirrored`.

Only benchmarks and tests import this file; the library (dlg_jax/) never
imports torch. Install: `pip install -r requirements-bench.txt`.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from benchmarks import matching_problem

# Zoo models this file mirrors, by dlg_jax registry name.
MIRRORED = ('lenet', 'lenet5', 'mlp', 'resnet18', 'vit_small', 'mobilenet_v2', 'densenet121',
            'inception_v3')


class NotMirrored(NotImplementedError):
  """A zoo model with no torch twin here (yet)."""


def _activation(name: str):
  table = {'sigmoid': torch.sigmoid, 'relu': F.relu, 'tanh': torch.tanh,
           # flax's nn.gelu defaults to the tanh approximation.
           'gelu': lambda x: F.gelu(x, approximate='tanh'), 'swish': F.silu, 'elu': F.elu}
  return table[name]


# ---------------------------------------------------------------- weights

def _t(a) -> torch.Tensor:
  return torch.from_numpy(np.array(a, dtype=np.float32))


def _conv(conv: nn.Conv2d, p: Mapping[str, Any]) -> None:
  """HWIO kernel -> OIHW."""
  conv.weight.data.copy_(_t(np.transpose(np.asarray(p['kernel']), (3, 2, 0, 1))))
  if conv.bias is not None:
    conv.bias.data.copy_(_t(p['bias']))


def _dense(dense: nn.Linear, p: Mapping[str, Any], from_map: tuple[int, int, int] | None = None
           ) -> None:
  """(in, out) kernel -> (out, in). `from_map` (H, W, C): the input is a map
  flattened NHWC in JAX and NCHW in torch, so the rows are permuted."""
  k = np.asarray(p['kernel'])
  if from_map is not None:
    h, w, c = from_map
    k = k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
  dense.weight.data.copy_(_t(k.T))
  if dense.bias is not None:
    dense.bias.data.copy_(_t(p['bias']))


def _ln(ln: nn.LayerNorm, p: Mapping[str, Any]) -> None:
  ln.weight.data.copy_(_t(p['scale']))
  ln.bias.data.copy_(_t(p['bias']))


def _bn(bn: nn.BatchNorm2d, p: Mapping[str, Any], s: Mapping[str, Any]) -> None:
  bn.weight.data.copy_(_t(p['scale']))
  bn.bias.data.copy_(_t(p['bias']))
  bn.running_mean.copy_(_t(s['mean']))
  bn.running_var.copy_(_t(s['var']))


# ---------------------------------------------------------------- models

class DLGLeNet(nn.Module):
  """Zhu et al.'s LeNet: 3 × (conv 5×5, pad 2, strides 2, 2, 1, act), dense."""

  def __init__(self, size: int, channels: int = 12, num_classes: int = 100,
               act: str = 'sigmoid', in_channels: int = 3):
    super().__init__()
    self.act = _activation(act)
    self.convs = nn.ModuleList([
        nn.Conv2d(in_channels if i == 0 else channels, channels, 5, stride=s, padding=2)
        for i, s in enumerate((2, 2, 1))])
    self.map = (size // 4, size // 4, channels)
    self.fc = nn.Linear(int(np.prod(self.map)), num_classes)

  def forward(self, x):
    for conv in self.convs:
      x = self.act(conv(x))
    return self.fc(x.flatten(1))

  def load_flax(self, variables):
    p = variables['params']
    for i, conv in enumerate(self.convs):
      _conv(conv, p[f'Conv_{i}'])
    _dense(self.fc, p['Dense_0'], from_map=self.map)


class LeNet5(nn.Module):
  """LeCun et al.'s LeNet-5 as Zheng uses it: conv 6@5×5 – pool – conv 16@5×5 –
  pool – fc 120 – fc 84 – classifier (max-pooling, ReLU by default)."""

  def __init__(self, size: int, num_classes: int = 10, act: str = 'relu', in_channels: int = 3):
    super().__init__()
    self.act = _activation(act)
    self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2 if size == 28 else 0)
    self.conv2 = nn.Conv2d(6, 16, 5)
    side = ((size if size == 28 else size - 4) // 2 - 4) // 2
    self.map = (side, side, 16)
    self.fc1 = nn.Linear(int(np.prod(self.map)), 120)
    self.fc2 = nn.Linear(120, 84)
    self.fc3 = nn.Linear(84, num_classes)

  def forward(self, x):
    x = F.max_pool2d(self.act(self.conv1(x)), 2)
    x = F.max_pool2d(self.act(self.conv2(x)), 2)
    x = self.act(self.fc1(x.flatten(1)))
    return self.fc3(self.act(self.fc2(x)))

  def load_flax(self, variables):
    p = variables['params']
    _conv(self.conv1, p['Conv_0'])
    _conv(self.conv2, p['Conv_1'])
    _dense(self.fc1, p['Dense_0'], from_map=self.map)
    _dense(self.fc2, p['Dense_1'])
    _dense(self.fc3, p['Dense_2'])


class MLP(nn.Module):
  """Flatten – [dense – act] × hidden – dense."""

  def __init__(self, size: int, num_classes: int = 10, hidden_sizes=(1024, 1024),
               act: str = 'relu', use_bias: bool = True, in_channels: int = 3):
    super().__init__()
    self.act = _activation(act)
    self.map = (size, size, in_channels)
    widths = [size * size * in_channels, *hidden_sizes]
    self.hidden = nn.ModuleList([nn.Linear(a, b, bias=use_bias)
                                 for a, b in zip(widths[:-1], widths[1:])])
    self.head = nn.Linear(widths[-1], num_classes, bias=use_bias)

  def forward(self, x):
    x = x.flatten(1)
    for layer in self.hidden:
      x = self.act(layer(x))
    return self.head(x)

  def load_flax(self, variables):
    p = variables['params']
    for i, layer in enumerate(self.hidden):
      _dense(layer, p[f'dense{i + 1}'], from_map=self.map if i == 0 else None)
    _dense(self.head, p['head'])


class BasicBlock(nn.Module):
  """He et al.'s basic block (torchvision's): two 3×3 conv–BN, shortcut, act."""

  def __init__(self, cin: int, cout: int, stride: int, act):
    super().__init__()
    self.act = act
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.downsample = None
    if stride != 1 or cin != cout:
      self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

  def forward(self, x):
    y = self.act(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return self.act(y + (x if self.downsample is None else self.downsample(x)))

  def load_flax(self, p, s):
    _conv(self.conv1, p['Conv_0'])
    _bn(self.bn1, p['BatchNorm_0'], s['BatchNorm_0'])
    _conv(self.conv2, p['Conv_1'])
    _bn(self.bn2, p['BatchNorm_1'], s['BatchNorm_1'])
    if self.downsample is not None:
      _conv(self.downsample[0], p['downsample_conv'])
      _bn(self.downsample[1], p['downsample_bn'], s['downsample_bn'])


class ResNet18(nn.Module):
  """ResNet-18; stem 'cifar' (3×3/1 conv) or 'imagenet' (7×7/2 conv + 3×3/2 max-pool)."""

  def __init__(self, num_classes: int = 10, stem: str = 'cifar', width: int = 64,
               act: str = 'relu', stage_sizes=(2, 2, 2, 2), in_channels: int = 3):
    super().__init__()
    self.act = _activation(act)
    self.imagenet = stem == 'imagenet'
    k, s = (7, 2) if self.imagenet else (3, 1)
    self.stem_conv = nn.Conv2d(in_channels, width, k, s, k // 2, bias=False)
    self.stem_bn = nn.BatchNorm2d(width)
    blocks, names, cin = [], [], width
    for i, n in enumerate(stage_sizes):
      for j in range(n):
        cout = width * 2**i
        blocks.append(BasicBlock(cin, cout, 2 if i > 0 and j == 0 else 1, self.act))
        names.append(f'stage{i + 1}_block{j + 1}')
        cin = cout
    self.blocks = nn.ModuleList(blocks)
    self.names = names
    self.fc = nn.Linear(cin, num_classes)

  def forward(self, x):
    x = self.act(self.stem_bn(self.stem_conv(x)))
    if self.imagenet:
      x = F.max_pool2d(x, 3, 2, 1)
    for block in self.blocks:
      x = block(x)
    return self.fc(x.mean(dim=(2, 3)))

  def load_flax(self, variables):
    p, s = variables['params'], variables['batch_stats']
    _conv(self.stem_conv, p['stem_conv'])
    _bn(self.stem_bn, p['stem_bn'], s['stem_bn'])
    for name, block in zip(self.names, self.blocks):
      block.load_flax(p[name], s[name])
    _dense(self.fc, p['fc'])


class _EncoderBlock(nn.Module):
  """Pre-LN transformer block: x + attention(LN(x)); x + MLP(LN(x))."""

  def __init__(self, width: int, heads: int, mlp_dim: int, act):
    super().__init__()
    self.heads, self.act = heads, act
    self.norm1 = nn.LayerNorm(width, eps=1e-6)  # flax's LayerNorm epsilon
    self.qkv = nn.Linear(width, 3 * width, bias=False)
    self.out = nn.Linear(width, width)
    self.norm2 = nn.LayerNorm(width, eps=1e-6)
    self.mlp1 = nn.Linear(width, mlp_dim)
    self.mlp2 = nn.Linear(mlp_dim, width)

  def forward(self, x):
    n, t, width = x.shape
    d = width // self.heads
    qkv = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (N, H, T, D)
    probs = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
    x = x + self.out((probs @ v).transpose(1, 2).reshape(n, t, width))
    return x + self.mlp2(self.act(self.mlp1(self.norm2(x))))

  def load_flax(self, p):
    _ln(self.norm1, p['norm1'])
    _dense(self.qkv, p['attention']['qkv'])
    _dense(self.out, p['attention']['out'])
    _ln(self.norm2, p['norm2'])
    _dense(self.mlp1, p['mlp1'])
    _dense(self.mlp2, p['mlp2'])


class ViT(nn.Module):
  """lucidrains' ViT as DIA uses it: p×p patches ((p1 p2 c) order) embedded by a
  dense layer, CLS token, position embedding, pre-LN blocks, LN + dense head."""

  def __init__(self, size: int, num_classes: int = 10, patch_size: int = 4, width: int = 256,
               depth: int = 4, num_heads: int = 8, mlp_dim: int = 512, pool: str = 'cls',
               act: str = 'gelu', in_channels: int = 3):
    super().__init__()
    if pool != 'cls':
      raise NotMirrored('vit_small with pool != cls')
    self.p = patch_size
    tokens = (size // patch_size) ** 2
    self.patch_embedding = nn.Linear(patch_size * patch_size * in_channels, width)
    self.cls = nn.Parameter(torch.zeros(1, 1, width))
    self.pos_embedding = nn.Parameter(torch.zeros(1, tokens + 1, width))
    self.blocks = nn.ModuleList([_EncoderBlock(width, num_heads, mlp_dim, _activation(act))
                                 for _ in range(depth)])
    self.norm = nn.LayerNorm(width, eps=1e-6)
    self.head = nn.Linear(width, num_classes)

  def forward(self, x):
    n, c, h, w = x.shape
    p = self.p
    x = x.permute(0, 2, 3, 1).reshape(n, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
    x = self.patch_embedding(x.reshape(n, (h // p) * (w // p), p * p * c))
    x = torch.cat([self.cls.expand(n, -1, -1), x], dim=1) + self.pos_embedding
    for block in self.blocks:
      x = block(x)
    return self.head(self.norm(x[:, 0]))

  def load_flax(self, variables):
    p = variables['params']
    _dense(self.patch_embedding, p['patch_embedding'])
    self.cls.data.copy_(_t(p['cls']))
    self.pos_embedding.data.copy_(_t(np.asarray(p['pos_embedding'])[None]))
    for i, block in enumerate(self.blocks):
      block.load_flax(p[f'block{i + 1}'])
    _ln(self.norm, p['norm'])
    _dense(self.head, p['head'])


class _ConvBN(nn.Module):
  """conv (no bias) – BN – optional ReLU6; `groups` for the depthwise conv."""

  def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
               act: bool = True):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    self.bn = nn.BatchNorm2d(cout)
    self.act = act

  def forward(self, x):
    x = self.bn(self.conv(x))
    return F.relu6(x) if self.act else x


class _InvertedResidual(nn.Module):
  """Sandler et al.'s block: 1×1 expand – 3×3 depthwise – 1×1 linear projection."""

  def __init__(self, cin: int, cout: int, stride: int, expansion: int):
    super().__init__()
    hidden = cin * expansion
    units = [_ConvBN(cin, hidden, 1)] if expansion != 1 else []
    units += [_ConvBN(hidden, hidden, 3, stride, groups=hidden),
              _ConvBN(hidden, cout, 1, act=False)]
    self.units = nn.ModuleList(units)
    self.residual = stride == 1 and cin == cout

  def forward(self, x):
    y = x
    for unit in self.units:
      y = unit(y)
    return x + y if self.residual else y


def _load_units(units, p, s) -> None:
  for i, unit in enumerate(units):
    _conv(unit.conv, p[f'Conv_{i}'])
    _bn(unit.bn, p[f'BatchNorm_{i}'], s[f'BatchNorm_{i}'])


class MobileNetV2(nn.Module):
  """MobileNetV2 at width 1.0 as torchvision builds it (no dropout)."""

  SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

  def __init__(self, num_classes: int = 1000, in_channels: int = 3):
    super().__init__()
    self.stem = _ConvBN(in_channels, 32, 3, 2)
    blocks, cin = [], 32
    for t, c, n, stride in self.SETTINGS:
      for i in range(n):
        blocks.append(_InvertedResidual(cin, c, stride if i == 0 else 1, t))
        cin = c
    self.blocks = nn.ModuleList(blocks)
    self.head = _ConvBN(cin, 1280, 1)
    self.classifier = nn.Linear(1280, num_classes)

  def forward(self, x):
    x = self.stem(x)
    for block in self.blocks:
      x = block(x)
    return self.classifier(self.head(x).mean(dim=(2, 3)))

  def load_flax(self, variables):
    p, s = variables['params'], variables['batch_stats']
    _load_units([self.stem, self.head], p, s)
    for i, block in enumerate(self.blocks):
      _load_units(block.units, p[f'InvertedResidual_{i}'], s[f'InvertedResidual_{i}'])
    _dense(self.classifier, p['classifier'])


class _DenseLayer(nn.Module):
  """Huang et al.'s pre-activation dense layer: BN–act–1×1 conv–BN–act–3×3 conv (k new maps)."""

  def __init__(self, cin: int, growth_rate: int, bn_size: int, act):
    super().__init__()
    self.act = act
    self.norm0 = nn.BatchNorm2d(cin)
    self.conv0 = nn.Conv2d(cin, bn_size * growth_rate, 1, bias=False)
    self.norm1 = nn.BatchNorm2d(bn_size * growth_rate)
    self.conv1 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, 1, 1, bias=False)

  def forward(self, x):
    return self.conv1(self.act(self.norm1(self.conv0(self.act(self.norm0(x))))))

  def load_flax(self, p, s):
    _bn(self.norm0, p['BatchNorm_0'], s['BatchNorm_0'])
    _conv(self.conv0, p['Conv_0'])
    _bn(self.norm1, p['BatchNorm_1'], s['BatchNorm_1'])
    _conv(self.conv1, p['Conv_1'])


class DenseNet(nn.Module):
  """DenseNet (torchvision's layout; the defaults are DenseNet-121): 7×7/2 conv–BN–act,
  3×3/2 max-pool, dense blocks joined by BN–act–1×1 conv–2×2 average pool
  transitions, a final BN–act, global average pool and one dense layer."""

  def __init__(self, num_classes: int = 1000, act: str = 'relu', growth_rate: int = 32,
               block_sizes=(6, 12, 24, 16), bn_size: int = 4, init_features: int = 64,
               compression: float = 0.5, in_channels: int = 3):
    super().__init__()
    self.act = _activation(act)
    self.conv0 = nn.Conv2d(in_channels, init_features, 7, 2, 3, bias=False)
    self.norm0 = nn.BatchNorm2d(init_features)
    c, self.blocks, self.transitions = init_features, nn.ModuleList(), nn.ModuleList()
    for i, n in enumerate(block_sizes):
      layers = []
      for _ in range(n):
        layers.append(_DenseLayer(c, growth_rate, bn_size, self.act))
        c += growth_rate
      self.blocks.append(nn.ModuleList(layers))
      if i < len(block_sizes) - 1:
        out = int(c * compression)
        self.transitions.append(nn.ModuleDict(
            {'norm': nn.BatchNorm2d(c), 'conv': nn.Conv2d(c, out, 1, bias=False)}))
        c = out
    self.norm_final = nn.BatchNorm2d(c)
    self.classifier = nn.Linear(c, num_classes)

  def forward(self, x):
    x = F.max_pool2d(self.act(self.norm0(self.conv0(x))), 3, 2, 1)
    for i, block in enumerate(self.blocks):
      for layer in block:
        x = torch.cat([x, layer(x)], 1)
      if i < len(self.transitions):
        t = self.transitions[i]
        x = F.avg_pool2d(t['conv'](self.act(t['norm'](x))), 2, 2)
    return self.classifier(self.act(self.norm_final(x)).mean(dim=(2, 3)))

  def load_flax(self, variables):
    p, s = variables['params'], variables['batch_stats']
    _conv(self.conv0, p['conv0'])
    # dlg_jax's auto-named norms: the stem's, each transition's, the final one.
    _bn(self.norm0, p['BatchNorm_0'], s['BatchNorm_0'])
    for i, block in enumerate(self.blocks):
      for j, layer in enumerate(block):
        layer.load_flax(p[f'block{i + 1}_layer{j + 1}'], s[f'block{i + 1}_layer{j + 1}'])
    for i, t in enumerate(self.transitions):
      _bn(t['norm'], p[f'BatchNorm_{i + 1}'], s[f'BatchNorm_{i + 1}'])
      _conv(t['conv'], p[f'transition{i + 1}'])
    last = f'BatchNorm_{len(self.blocks)}'
    _bn(self.norm_final, p[last], s[last])
    _dense(self.classifier, p['classifier'])


class _BasicConv(nn.Module):
  """Inception's BasicConv2d: conv (no bias) – BN (eps 1e-3) – act."""

  def __init__(self, cin: int, step, act):
    super().__init__()
    kh, kw = step.kernel_size
    pad = (kh // 2, kw // 2) if step.padding == 'SAME' else (0, 0)
    self.conv = nn.Conv2d(cin, step.features, (kh, kw), step.strides, pad, bias=False)
    self.bn = nn.BatchNorm2d(step.features, eps=1e-3)
    self.act = act

  def forward(self, x):
    return self.act(self.bn(self.conv(x)))

  def load_flax(self, p, s):
    _conv(self.conv, p['Conv_0'])
    _bn(self.bn, p['BatchNorm_0'], s['BatchNorm_0'])


class _Branch(nn.Module):
  """One Inception branch: convs, pools (3×3/1 average padded by 1 and counting
  the padding; 3×3/2 max unpadded) and side-by-side splits, in order."""

  def __init__(self, cin: int, steps, act):
    super().__init__()
    from dlg_jax.models import inception  # pylint: disable=g-import-not-at-top
    self.avg, self.max = inception.AVG_POOL, inception.MAX_POOL
    self.convs, self.kinds, c = nn.ModuleDict(), [], cin
    for step in steps:
      if isinstance(step, inception.ConvStep):
        step = (step,)
      if isinstance(step, tuple):  # one conv, or a split
        for conv in step:
          self.convs[conv.name] = _BasicConv(c, conv, act)
        self.kinds.append(tuple(conv.name for conv in step))
        c = sum(conv.features for conv in step)
      else:
        self.kinds.append(step)
    self.out_channels = c

  def forward(self, x):
    for kind in self.kinds:
      if kind == self.avg:
        x = F.avg_pool2d(x, 3, 1, 1)
      elif kind == self.max:
        x = F.max_pool2d(x, 3, 2)
      else:
        x = torch.cat([self.convs[name](x) for name in kind], 1)
    return x

  def load_flax(self, p, s):
    for name, conv in self.convs.items():
      conv.load_flax(p[name], s[name])


class InceptionV3(nn.Module):
  """Inception-v3 (Szegedy et al. 2016) as torchvision builds it, without the
  auxiliary head: its logits do not enter the client's loss, so its
  parameters' gradients are zero on both sides (dlg_jax's XLA drops its
  computation) and add nothing to either matching loss. The branch tables
  (torchvision's names, widths and order) are read from
  `dlg_jax.models.inception`; the gradient check ties the two."""

  def __init__(self, num_classes: int = 1000, act: str = 'relu', in_channels: int = 3):
    super().__init__()
    from dlg_jax.models import inception  # pylint: disable=g-import-not-at-top
    act = _activation(act)
    self.stem = _Branch(in_channels, inception._STEM, act)  # pylint: disable=protected-access
    c, self.blocks = self.stem.out_channels, nn.ModuleDict()
    for name, branches in inception._MIXED_5_6 + inception._MIXED_7:  # pylint: disable=protected-access
      block = nn.ModuleList([_Branch(c, branch, act) for branch in branches])
      self.blocks[name] = block
      c = sum(branch.out_channels for branch in block)
    self.fc = nn.Linear(c, num_classes)

  def forward(self, x):
    x = self.stem(x)
    for block in self.blocks.values():
      x = torch.cat([branch(x) for branch in block], 1)
    return self.fc(x.mean(dim=(2, 3)))

  def load_flax(self, variables):
    p, s = variables['params'], variables['batch_stats']
    self.stem.load_flax(p, s)
    for name, block in self.blocks.items():
      for branch in block:
        branch.load_flax(p[name], s[name])
    _dense(self.fc, p['fc'])


def build(config: Mapping[str, Any], input_shape: tuple[int, int, int],
          num_classes: int) -> nn.Module:
  """The torch twin of `dlg_jax.models.build(config, input_shape, num_classes)`."""
  from dlg_jax import models  # pylint: disable=g-import-not-at-top
  config = dict(config)
  config.update(models.parse_options(config.pop('options', '') or ''))
  name = config.pop('name')
  size, _, channels = input_shape
  if name == 'lenet':
    return DLGLeNet(size, num_classes=num_classes, in_channels=channels, **config)
  if name == 'lenet5':
    if config.pop('dropout_rate', 0.0):
      raise NotMirrored('lenet5 with dropout')
    return LeNet5(size, num_classes=num_classes, in_channels=channels, **config)
  if name == 'mlp':
    if config.pop('dropout_rate', 0.0):
      raise NotMirrored('mlp with dropout')
    return MLP(size, num_classes=num_classes, in_channels=channels, **config)
  if name == 'resnet18':
    return ResNet18(num_classes=num_classes, in_channels=channels, **config)
  if name == 'vit_small':
    if config.pop('dropout_rate', 0.0):
      raise NotMirrored('vit_small with dropout')
    return ViT(size, num_classes=num_classes, in_channels=channels, **config)
  if name == 'mobilenet_v2':
    if config.pop('dropout_rate', 0.0):
      raise NotMirrored('mobilenet_v2 with dropout')
    config.pop('conv_impl', None)
    return MobileNetV2(num_classes=num_classes, in_channels=channels, **config)
  if name in ('densenet121', 'inception_v3'):
    if config.pop('dropout_rate', 0.0):
      raise NotMirrored(f'{name} with dropout')
    config.pop('conv_impl', None)
    for layout in ('scan_layers', 'unrolled_blocks'):  # compile-time layouts; the function is the same
      config.pop(layout, None)
    cls = DenseNet if name == 'densenet121' else InceptionV3
    return cls(num_classes=num_classes, in_channels=channels, **config)
  raise NotMirrored(f'no torch reference for {name!r} yet (mirrored: {MIRRORED})')


def from_flax(config: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int,
              variables: Any, train: bool) -> nn.Module:
  """The torch twin holding a dlg_jax model's `variables`; BatchNorm in train or eval mode."""
  module = build(config, input_shape, num_classes)
  module.load_flax(variables)
  module.train(train)
  return module


# ---------------------------------------------------------------- losses

def param_gradients(module: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                    create_graph: bool) -> tuple[torch.Tensor, ...]:
  """∇θ of the mean cross-entropy of the batch (the client's FedSGD update)."""
  loss = F.cross_entropy(module(x), labels)
  return torch.autograd.grad(loss, [p for p in module.parameters()], create_graph=create_graph)


def total_variation(x: torch.Tensor) -> torch.Tensor:
  """Mean |horizontal difference| + mean |vertical difference| (NCHW)."""
  return ((x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
          + (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean())


def cosine_distance(a, b) -> torch.Tensor:
  """1 − ⟨a, b⟩ / (|a| |b|), all layers flattened into one vector."""
  dot = sum((x * y).sum() for x, y in zip(a, b))
  na = sum((x * x).sum() for x in a)
  nb = sum((y * y).sum() for y in b)
  return 1.0 - dot / (na.sqrt() * nb.sqrt() + 1e-12)


def l2_distance(a, b) -> torch.Tensor:
  """Σ over all layers of squared differences (DLG)."""
  return sum(((x - y) ** 2).sum() for x, y in zip(a, b))


def matching_loss(module: nn.Module, x: torch.Tensor, labels: torch.Tensor, target,
                  distance: str, tv: float = 0.0) -> torch.Tensor:
  """Gradient distance of the dummy `x` to `target` (+ tv × TV(x))."""
  dummy = param_gradients(module, x, labels, create_graph=True)
  loss = cosine_distance(dummy, target) if distance == 'cosine' else l2_distance(dummy, target)
  if tv:
    loss = loss + tv * total_variation(x)
  return loss


# ---------------------------------------------------------------- steps

class IGStep:
  """Geiping et al.'s iteration: ∇x of cosine + TV, Adam on its sign, clamp to [0, 1]."""

  def __init__(self, module, x0, labels, target, tv: float = 1e-4, lr: float = 0.1):
    self.module, self.labels, self.target, self.tv = module, labels, target, tv
    self.x = x0.clone().requires_grad_(True)
    self.opt = torch.optim.Adam([self.x], lr=lr)
    self.evaluations = 0
    self.iterations = 0

  def __call__(self) -> float:
    self.opt.zero_grad()
    loss = matching_loss(self.module, self.x, self.labels, self.target, 'cosine', self.tv)
    grad, = torch.autograd.grad(loss, self.x)
    self.x.grad = grad.sign()
    self.opt.step()
    with torch.no_grad():
      self.x.clamp_(0.0, 1.0)
    self.evaluations += 1
    self.iterations += 1
    return float(loss)


class DLGStep:
  """One `LBFGS.step()` of the DLG code (up to max_iter inner iterations)."""

  def __init__(self, module, x0, labels, target, max_iter: int = 20, history: int = 100):
    self.module, self.labels, self.target = module, labels, target
    self.x = x0.clone().requires_grad_(True)
    self.opt = torch.optim.LBFGS([self.x], lr=1.0, max_iter=max_iter, history_size=history)
    self.evaluations = 0

  @property
  def iterations(self) -> int:
    return int(self.opt.state[self.opt._params[0]].get('n_iter', 0))  # pylint: disable=protected-access

  def __call__(self) -> float:
    def closure():
      self.opt.zero_grad()
      loss = matching_loss(self.module, self.x, self.labels, self.target, 'l2')
      loss.backward()
      self.evaluations += 1
      return loss
    return float(self.opt.step(closure))


def time_steps(step, calls: int, warmup: int = 1) -> dict[str, float]:
  """Wall seconds of `calls` calls of `step` after `warmup`, per iteration and evaluation."""
  for _ in range(warmup):
    step()
  it0, ev0 = step.iterations, step.evaluations
  start = time.perf_counter()
  for _ in range(calls):
    loss = step()
  wall = time.perf_counter() - start
  iters, evals = step.iterations - it0, step.evaluations - ev0
  return {'wall_s': wall, 'iterations': iters, 'evaluations': evals,
          's_per_iter': wall / max(iters, 1), 's_per_eval': wall / max(evals, 1),
          'final_loss': loss}


# ---------------------------------------------------------------- the check

def torch_side(module, truth, dummy, label, *, distance: str, tv: float):
  """(target gradients, matching loss, ∇x NHWC) in torch."""
  x_true = torch.from_numpy(truth).permute(0, 3, 1, 2).contiguous()
  labels = torch.from_numpy(label).long()
  target = [g.detach() for g in param_gradients(module, x_true, labels, create_graph=False)]
  x = torch.from_numpy(dummy).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
  loss = matching_loss(module, x, labels, target, distance, tv)
  grad, = torch.autograd.grad(loss, x)
  return target, float(loss.detach()), grad.detach().permute(0, 2, 3, 1).numpy()


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
  return float(np.max(np.abs(a - ref))) / max(float(np.max(np.abs(ref))), 1e-300)


def check_gradients(config: Mapping[str, Any], size: int, num_classes: int, *,
                    distance: str, tv: float, train: bool, seed: int = 0,
                    tolerance: float = 1e-4, float32: bool = True) -> dict[str, Any]:
  """∇x of the matching loss, torch vs dlg_jax, on one random image.

  The criterion: in float64 on both sides (same float32 weights and images,
  cast up), max |∇x_torch − ∇x_jax| / max |∇x_jax| <= `tolerance`, and the
  same for the loss value. Relative to the largest entry because the
  gradient's scale differs by orders of magnitude between models and losses.
  float64 because the check is about the two programs computing the same
  function, apart from float32 rounding: on ResNet-18 (CIFAR, eval
  BatchNorm) IG's float32 ∇x from dlg_jax is off by 1.9% of its largest
  entry from the float64 one (torch's float32: 6e-6; measured 2026-12-03,
  docs/results/models_speed.md), which a float32 comparison would fail on
  while the definitions agree to 1e-14. The float32 errors (each side
  against the float64 result, and torch against dlg_jax) are reported too.

  `float32=False` skips the float32 runs (the test's shortcut).

  Returns the dict the benchmark records, plus the float32 torch module and
  the inputs (keys starting with '_') for timing the same problem.
  """
  import jax
  p = matching_problem.build(config, size, num_classes, seed=seed)
  kw = dict(distance=distance, tv=tv, train=train)
  module = from_flax(config, p.model.input_shape, num_classes, p.variables, train)
  target, _, tgrad32 = torch_side(module, p.truth, p.dummy, p.label, distance=distance, tv=tv)
  jgrad32 = None
  if float32:
    _, _, jgrad32 = matching_problem.jax_side(p, **kw)
  module64 = from_flax(config, p.model.input_shape, num_classes, p.variables, train).double()
  up = lambda a: np.asarray(a).astype(np.float64)
  _, tloss, tgrad = torch_side(module64, up(p.truth), up(p.dummy), p.label, distance=distance,
                               tv=tv)
  with jax.enable_x64(True):
    p64 = p._replace(variables=jax.tree.map(up, p.variables), truth=up(p.truth),
                     dummy=up(p.dummy))
    _, jloss, jgrad = matching_problem.jax_side(p64, **kw)
  grad_err = _rel(tgrad, jgrad)
  loss_err = abs(tloss - jloss) / max(abs(jloss), 1e-300)
  return {'ok': bool(grad_err <= tolerance and loss_err <= tolerance
                     and np.max(np.abs(jgrad)) > 0),
          'grad_rel_err': grad_err, 'loss_rel_err': loss_err,
          'grad_scale': float(np.max(np.abs(jgrad))), 'loss_jax': jloss, 'loss_torch': tloss,
          'f32_jax_err': None if jgrad32 is None else _rel(jgrad32, jgrad),
          'f32_torch_err': _rel(tgrad32, jgrad),
          'f32_torch_vs_jax': None if jgrad32 is None else _rel(tgrad32, jgrad32),
          '_module': module, '_target': target, '_dummy': p.dummy, '_label': p.label}
