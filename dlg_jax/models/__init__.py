"""The model registry: names -> Flax modules, wrapped with their shapes.

Every module follows one convention: ``__call__(self, x, train=False)`` on
NHWC images, returning logits; dropout sites are `layers.MaskedDropout`, whose
masks travel in the ``'dropout_masks'`` variable collection. `Model` hides the
linen plumbing so that callers only see plain pytrees:

  model = models.build(config.model, input_shape=(32, 32, 3), num_classes=10)
  variables = model.init(key)            # {'params': ..., maybe 'batch_stats'}
  logits = model.apply(variables, x, masks=masks, train=True)
  logits, stats = model.apply(variables, x, train=True, mutable=True)  # a training step

Every forward pass goes through `Model.apply` (a wrapper such as
`preprocess.NormalizedModel` adds its own first layer there), never through
`module.apply`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from typing import Any, Callable, Mapping

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp

from dlg_jax.errors import ConfigError
from dlg_jax.models import densenet
from dlg_jax.models import inception
from dlg_jax.models import layers
from dlg_jax.models import lenet
from dlg_jax.models import mlp
from dlg_jax.models import mobilenet
from dlg_jax.models import resnet
from dlg_jax.models import vit
from dlg_jax.types import PyTree

# name -> module class. Keyword arguments of the class are the config fields.
MODELS: dict[str, Callable[..., nn.Module]] = {
    'lenet': lenet.DLGLeNet,
    'lenet5': lenet.LeNet5,
    'mlp': mlp.MLP,
    'resnet18': resnet.ResNet18,
    'resnet34': resnet.ResNet34,
    'resnet50': resnet.ResNet50,
    'densenet121': densenet.DenseNet121,
    'mobilenet_v2': mobilenet.MobileNetV2,
    'inception_v3': inception.InceptionV3,
    'vit_small': vit.ViT,
}


_SIGNED_ACTIVATIONS = ('tanh', 'elu')


# Eagerly, `module.init` dispatches every op of a forward pass and of every
# initialiser as its own small program: DenseNet-121 at 224 px took 22.8 s
# on a warm compilation cache, one compiled program 2.7 s (16.1 s cold).
# Values equal the eager ones to 1 ulp: XLA fuses each initialiser's scale
# into its sampling (conv kernels differ by ≤ 3e-8; BUILD_NOTES.md, "Throughput").
@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _initial_variables(module: nn.Module, input_shape: tuple[int, int, int], batch_size: int,
                       key: jax.Array) -> PyTree:
  x = jnp.zeros((batch_size, *input_shape), jnp.float32)
  variables = dict(module.init(key, x, train=False))
  variables.pop(layers.MASKS, None)
  return variables


@dataclasses.dataclass(frozen=True)
class Model:
  """A Flax module together with the input it was built for."""
  name: str
  module: nn.Module
  input_shape: tuple[int, int, int]
  num_classes: int

  @property
  def signed_features(self) -> bool:
    """Whether the features entering the output layer can be negative.

    Label recovery depends on it (`attacks.labels.idlg_label`). A ViT's head
    reads LayerNorm'd features; otherwise the last activation decides (GELU
    and swish dip to −0.17/−0.28 but their features sum positive, like ReLU's).
    """
    if isinstance(self.module, vit.ViT):
      return True
    return getattr(self.module, 'act', 'relu') in _SIGNED_ACTIVATIONS

  def init(self, key: jax.Array, batch_size: int = 1) -> PyTree:
    """Initial variables (params and, if any, batch_stats); no masks.

    One compiled program (`_initial_variables`), not an eager forward pass.
    """
    return _initial_variables(self.module, self.input_shape, batch_size, key)

  def mask_template(self, variables: PyTree, batch_size: int) -> PyTree:
    """All-ones dropout masks for a batch; {} when the model has no dropout.

    Shapes come from `jax.eval_shape`, so this costs no computation.
    """
    x = jax.ShapeDtypeStruct((batch_size, *self.input_shape), jnp.float32)
    shapes = jax.eval_shape(
        lambda v, xx: self.module.init(jax.random.key(0), xx, train=False), variables, x)
    shapes = shapes.get(layers.MASKS, {})
    return jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)

  def apply(self, variables: PyTree, x: jax.Array, *, masks: PyTree | None = None,
            train: bool = False, mutable: bool = False
            ) -> jax.Array | tuple[jax.Array, PyTree]:
    """Logits for NHWC `x`; with `mutable`, also the updated BatchNorm statistics.

    Args:
      variables: from `init`: 'params' and optionally 'batch_stats'.
      x: (N, H, W, C) inputs.
      masks: dropout keep-masks (see `mask_template`); None runs the model
        deterministically (no dropout), as an attacker who ignores it would.
      train: BatchNorm uses the batch's statistics (the client's training
        step) instead of its running averages.
      mutable: return the statistics too (a training step keeps them);
        otherwise they are not updated.

    Returns:
      logits (N, num_classes); with `mutable`, ``(logits, stats)`` where
      `stats` is ``{'batch_stats': ...}`` (running averages moved towards this
      batch's when `train`, unchanged otherwise) or ``{}`` for a model
      without BatchNorm, ready for ``{**variables, **stats}``.
    """
    variables = dict(variables)
    if masks:
      variables[layers.MASKS] = masks
    if 'batch_stats' not in variables:
      logits = self.module.apply(variables, x, train=train)
      return (logits, {}) if mutable else logits
    if not (train or mutable):
      return self.module.apply(variables, x, train=False)
    logits, stats = self.module.apply(variables, x, train=train, mutable=['batch_stats'])
    return (logits, dict(stats)) if mutable else logits


def parse_options(text: str) -> dict[str, Any]:
  """Keyword arguments from 'width=16,act=sigmoid,hidden_sizes=(64, 64)'.

  Values are Python literals; a bare word is a string, so shells need no
  nested quotes.

  >>> parse_options('width=16, act=sigmoid, hidden_sizes=(64, 64)')
  {'width': 16, 'act': 'sigmoid', 'hidden_sizes': (64, 64)}
  """
  if not text.strip():
    return {}
  bad = ValueError(f'model.options must look like "width=16,act=sigmoid" (Python literals '
                   f'or bare words), got {text!r}.')
  try:
    call = ast.parse(f'f({text})', mode='eval').body
  except SyntaxError as e:
    raise bad from e
  if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
    raise bad
  out = {}
  for keyword in call.keywords:
    if isinstance(keyword.value, ast.Name):
      out[keyword.arg] = keyword.value.id
      continue
    try:
      out[keyword.arg] = ast.literal_eval(keyword.value)
    except ValueError as e:
      raise bad from e
  return out


def module_arguments(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
  """(registry name, keyword arguments of its module) from a `model` config.

  The fields besides 'name' are the arguments; `config.options` (optional)
  adds more, as text (`parse_options`), so that
  `--config.model.options=width=16,act=sigmoid` works on a locked config
  whose file lists only the model's name. Builds nothing, so runs can check
  their model before any data or compilation.

  Raises:
    ValueError: an unknown model name or field, listing the choices; a bad
      options string; an option given both ways; a dropout rate outside [0, 1).
  """
  config = dict(config)
  name = config.pop('name', None)
  if name not in MODELS:
    raise ConfigError(f'unknown model {name!r}; choose one of {sorted(MODELS)}.')
  options = parse_options(config.pop('options', '') or '')
  both = sorted(set(options) & set(config))
  if both:
    raise ConfigError(f'model option(s) {both} are set both as fields and in model.options; '
                     'set each once.')
  config.update(options)
  types = {f.name: f.type for f in dataclasses.fields(MODELS[name])
           if f.name not in ('parent', 'name', 'num_classes')}
  unknown = set(config) - set(types)
  if unknown:
    raise ConfigError(f'model {name!r} has no option(s) {sorted(unknown)}; '
                     f'its options are {sorted(types)}.')
  for key, value in options.items():
    if types[key] not in _TEXT_TYPES:
      raise ConfigError(f'model.options cannot set {key} ({types[key]}) of {name}; the '
                       'registry names its variants.')
    if not _has_type(value, types[key]):
      raise ConfigError(f'model.options: {name} needs {key} of type {types[key]}, '
                       f'got {value!r}.')
  for key, value in config.items():
    if key.endswith('dropout_rate') and not (
        _has_type(value, 'float') and 0.0 <= float(value) < 1.0):
      raise ConfigError(f'model.{key} must be a number in [0, 1), got {value!r}.')
  return name, config


# Module field annotations (strings, under `from __future__ import
# annotations`) that text options can fill, and the Python types they take.
_TEXT_TYPES = {'int': (int,), 'float': (int, float), 'str': (str,), 'bool': (bool,),
               'tuple[int, ...]': (tuple,)}


def _has_type(value: Any, annotation: Any) -> bool:
  """Whether `value` fits a module field annotated `annotation`.

  Fields of other types (a ResNet's block class) cannot come from text.
  """
  allowed = _TEXT_TYPES.get(annotation if isinstance(annotation, str) else '')
  if allowed is None:
    return False
  if isinstance(value, bool) and annotation != 'bool':
    return False
  if annotation == 'tuple[int, ...]':
    return all(isinstance(v, int) and not isinstance(v, bool) for v in value)
  return isinstance(value, allowed)


def build(config: Mapping[str, Any], input_shape: tuple[int, int, int],
          num_classes: int) -> Model:
  """Builds `config.name` with its arguments (`module_arguments`).

  The input shape is tried first by tracing the model's init (shapes only,
  nothing computed), so that a model too small for its input fails here.

  Raises:
    ValueError: as `module_arguments`; a ConfigError naming data.size and the
      smallest size that works when the model cannot take `input_shape`.
  """
  name, config = module_arguments(config)
  cls = MODELS[name]
  module = cls(num_classes=num_classes, **config)
  input_shape = tuple(int(s) for s in input_shape)
  _check_input_size(name, module, input_shape)
  return Model(name=name, module=module, input_shape=input_shape, num_classes=num_classes)


# Sizes tried when looking for the smallest input a model takes: past this a
# model that still fails has a bug, not a size problem.
_LARGEST_TRIAL = 4096

# What tracing a model on too small an input raises: a zero fan-in in an
# initialiser (ZeroDivisionError), a window larger than its input (TypeError,
# ValueError from lax), flax's own shape errors.
_SHAPE_ERRORS = (ZeroDivisionError, TypeError, ValueError, flax.errors.FlaxError)


def _check_input_size(name: str, module: nn.Module, input_shape: tuple[int, int, int]) -> None:
  """Raises a ConfigError naming data.size when `module` cannot take `input_shape`."""
  height, width, _ = input_shape
  problem = _size_problem(module, input_shape)
  if problem is None:
    return
  smallest = _smallest_size(module, input_shape)
  if smallest is None:
    # No size works: a bug in the model, not the input; trace again, uncaught.
    _trace_init(module, input_shape)
    return
  raise ConfigError(f'model {name!r} cannot take data.size={height} ({height}×{width} inputs): '
                    f'its layers shrink the image to nothing ({problem}). The smallest size it '
                    f'takes is {smallest}; set data.size to {smallest} or more.')


def _trace_init(module: nn.Module, input_shape: tuple[int, ...]) -> Any:
  """The jaxpr of `module`'s init on one input: shapes only, no computation."""
  x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  return jax.make_jaxpr(lambda xx: module.init(jax.random.key(0), xx, train=False))(x).jaxpr


def _size_problem(module: nn.Module, input_shape: tuple[int, ...]) -> str | None:
  """Why `module` cannot take one input of `input_shape`; None when it can.

  Too small an input shows in one of two ways: an error while tracing, or,
  silently, an intermediate array with a zero-length axis (a pooling window
  larger than its input, whose mean is then NaN: DenseNet below 32 pixels).
  The answer is cached per (module, shape) since builds repeat.
  """
  try:
    hash(module)
  except TypeError:  # a field holds a list: no caching
    return _uncached_size_problem(module, input_shape)
  return _cached_size_problem(module, input_shape)


def _uncached_size_problem(module: nn.Module, input_shape: tuple[int, ...]) -> str | None:
  try:
    jaxpr = _trace_init(module, input_shape)
  except ConfigError:
    # The model's own check (ViT's patch size, an unknown ResNet stem) says
    # what to change; `init` raises it as it always has.
    return None
  except _SHAPE_ERRORS as e:
    return ' '.join(f'{type(e).__name__}: {e}'.split())[:300]
  empty = next(_empty_arrays(jaxpr), None)
  return None if empty is None else f'{empty[0]} gives an array of shape {empty[1]}'


_cached_size_problem = functools.lru_cache(maxsize=256)(_uncached_size_problem)


def _empty_arrays(jaxpr: Any):
  """(primitive, shape) of every zero-sized array the jaxpr makes, nested ones included."""
  for eqn in jaxpr.eqns:
    for var in eqn.outvars:
      shape = getattr(var.aval, 'shape', ())
      if 0 in shape:
        yield eqn.primitive.name, shape
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, 'jaxpr', sub)  # a ClosedJaxpr wraps its Jaxpr
        if hasattr(sub, 'eqns'):
          yield from _empty_arrays(sub)


def _smallest_size(module: nn.Module, input_shape: tuple[int, int, int]) -> int | None:
  """The smallest square size above `input_shape`'s that `module` takes.

  Doubles until a size works, then bisects: a model that takes a size takes
  every larger one, as windows and strides only shrink images. None when
  nothing up to `_LARGEST_TRIAL` works.
  """
  low, channels = max(input_shape[:2]), input_shape[2]
  high = max(2 * low, 1)
  while _size_problem(module, (high, high, channels)) is not None:
    low, high = high, 2 * high
    if high > _LARGEST_TRIAL:
      return None
  while high - low > 1:
    middle = (low + high) // 2
    if _size_problem(module, (middle, middle, channels)) is None:
      high = middle
    else:
      low = middle
  return high
