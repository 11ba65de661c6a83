"""Client-side defenses against gradient leakage, as composable pure transforms.

A `Defense` has two stages, because DP-SGD needs both:

* ``per_example(grads_per_example, key)`` sees the per-example gradients
  (every leaf has a leading batch axis B) before they are averaged; DP-SGD
  clips here.
* ``aggregate(grads, key, *, batch_size=None)`` sees the averaged gradient the
  client is about to share; noise, quantisation and pruning act here.

Every factory (`gaussian_noise`, `laplacian_noise`, `quantize`, `prune`,
`dp_sgd`) validates its parameters on the host and returns a `Defense` whose
stages are pure and jit-compatible: the parameters are Python constants closed
over, so the same key always gives the same output. `chain` composes defenses in
order; `build` makes a chain from config specs through the `DEFENSES` registry.

How the batch size reaches DP-SGD's noise: the aggregate stage takes a keyword
``batch_size`` (a static Python int). Stages that do not need it ignore it;
`dp_sgd` raises if it is missing. `Defense.apply` runs the whole pipeline on a
batch of per-example gradients (per-example stage, mean, aggregate stage) and
passes the batch size from the leading axis, so most callers never pass it by
hand.

References:
  Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019
  (arXiv:1906.08935): Gaussian/Laplacian noise, fp16/bf16
  quantisation and gradient pruning as defenses.
  Abadi et al., "Deep Learning with Differential Privacy", CCS 2016
  (arXiv:1607.00133): DP-SGD.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import functools
import inspect
import itertools
import math
import operator
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp

from dlg_jax.errors import ConfigError

PyTree: TypeAlias = Any
PerExampleFn: TypeAlias = Callable[[PyTree, jax.Array], PyTree]
# (grads, key, *, batch_size=None) -> grads
AggregateFn: TypeAlias = Callable[..., PyTree]

QUANTIZE_FORMATS = ('fp16', 'bf16', 'int8')


def _identity_per_example(grads: PyTree, key: jax.Array) -> PyTree:
  del key
  return grads


def _identity_aggregate(
    grads: PyTree, key: jax.Array, *, batch_size: int | None = None
) -> PyTree:
  del key, batch_size
  return grads


@dataclasses.dataclass(frozen=True, eq=False)
class Defense:
  """A client-side gradient transform in two stages.

  Attributes:
    per_example: ``(grads_per_example, key) -> grads_per_example``; leaves have
      a leading batch axis B. The identity for every defense but `dp_sgd`.
    aggregate: ``(grads, key, *, batch_size=None) -> grads`` on the averaged
      gradient. ``batch_size`` is the static number of examples averaged; only
      `dp_sgd` needs it.
    specs: one ``{'name': ..., **options}`` per stage of the chain, such that
      ``build(specs)`` rebuilds the defense.
    needs_per_example: whether `per_example` is not the identity, i.e. the
      client must compute per-example gradients (vmap of grad) rather than the
      cheaper batch gradient.
  """
  per_example: PerExampleFn = _identity_per_example
  aggregate: AggregateFn = _identity_aggregate
  specs: tuple[Mapping[str, Any], ...] = ()
  needs_per_example: bool = False

  def describe(self) -> list[dict[str, Any]]:
    """The chain with its parameters, JSON-ready (for ``config.json``)."""
    return [dict(spec) for spec in self.specs]

  def apply(self, grads_per_example: PyTree, key: jax.Array) -> PyTree:
    """Per-example stage, mean over the batch axis, then aggregate stage.

    The batch size given to the aggregate stage is the leading axis of the
    leaves. The two stages get independent keys (``fold_in(key, 0)`` and
    ``fold_in(key, 1)``).

    Args:
      grads_per_example: gradients whose leaves have a leading batch axis B.
      key: a PRNG key.

    Returns:
      The shared (averaged, defended) gradient, leaves without the batch axis.
    """
    batch_size = _batch_size(grads_per_example)
    grads = self.per_example(grads_per_example, jax.random.fold_in(key, 0))
    grads = jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)
    return self.aggregate(
        grads, jax.random.fold_in(key, 1), batch_size=batch_size)


# ----------------------------------------------------------------------------
# Helpers.
# ----------------------------------------------------------------------------


def check_real(name: str, value: Any) -> float:
  """Casts to float, rejecting non-numbers, NaN and infinities."""
  if isinstance(value, bool):
    raise ConfigError(f'{name} must be a number, got {value!r}.')
  try:
    value = float(value)
  except (TypeError, ValueError):
    raise ConfigError(f'{name} must be a number, got {value!r}.') from None
  if not math.isfinite(value):
    raise ConfigError(f'{name} must be finite, got {value}.')
  return value


def _check_batch_size(batch_size: Any) -> int:
  try:
    batch_size = operator.index(batch_size)
  except TypeError:
    raise ConfigError(
        f'batch_size must be a static Python int, got {batch_size!r}.'
    ) from None
  if batch_size < 1:
    raise ConfigError(f'batch_size must be >= 1, got {batch_size}.')
  return batch_size


def _batch_size(grads_per_example: PyTree) -> int:
  """The common leading axis of all leaves (static)."""
  leaves = jax.tree.leaves(grads_per_example)
  if not leaves:
    raise ConfigError('per-example gradients are an empty pytree.')
  sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
  if len(sizes) != 1 or None in sizes:
    raise ConfigError(
        'every per-example leaf needs the same leading batch axis, got '
        f'leading sizes {sorted(map(str, sizes))}.')
  return sizes.pop()


def _compute_dtype(dtype: Any) -> Any:
  # fp16/bf16 leaves are processed in float32, float64 stays float64.
  return jnp.promote_types(dtype, jnp.float32)


def _add_noise(
    grads: PyTree, key: jax.Array, sample: Callable[..., jax.Array],
    std_scale: float,
) -> PyTree:
  """Adds i.i.d. ``std_scale * sample(...)`` noise to every coordinate.

  One draw for the whole flattened tree, then split per leaf: one sampler in
  the compiled graph instead of one per leaf (a ResNet has 100+ leaves, and
  each threefry instance costs compile time). Leaves get disjoint slices, so
  they never share noise, and the draw depends only on `key` and the tree's
  structure and shapes.
  """
  leaves, treedef = jax.tree.flatten(grads)
  if not leaves:
    return grads
  ct = functools.reduce(jnp.promote_types,
                        [_compute_dtype(leaf.dtype) for leaf in leaves])
  sizes = [leaf.size for leaf in leaves]
  noise = sample(key, (sum(sizes),), ct) * jnp.asarray(std_scale, ct)
  chunks = jnp.split(noise, list(itertools.accumulate(sizes))[:-1])
  noisy = [(leaf.astype(ct) + chunk.reshape(leaf.shape)).astype(leaf.dtype)
           for leaf, chunk in zip(leaves, chunks)]
  return jax.tree.unflatten(treedef, noisy)


# ----------------------------------------------------------------------------
# Factories.
# ----------------------------------------------------------------------------


def identity() -> Defense:
  """No defense: both stages return the gradients unchanged."""
  return Defense()


def gaussian_noise(
    sigma: float | None = None, *, variance: float | None = None
) -> Defense:
  """Adds i.i.d. Gaussian noise N(0, sigma^2) to every shared coordinate.

  The DLG paper states its noise levels as *variances* (1e-4 ... 1e-1; the
  attack fails above 1e-2); pass those as ``variance=``, which is the same as
  ``sigma=sqrt(variance)``. Give exactly one of the two.

  No formal guarantee: without clipping the sensitivity is unbounded, so this
  is the DLG heuristic, not differential privacy (use `dp_sgd` for that).

  Args:
    sigma: standard deviation, >= 0 (0 is the identity).
    variance: variance, >= 0, instead of `sigma`.

  Returns:
    A `Defense` acting on the aggregate stage.

  Example:
    >>> g = {'w': jnp.zeros((4,))}
    >>> d = gaussian_noise(variance=1e-2)
    >>> d.describe()
    [{'name': 'gaussian', 'variance': 0.01}]
    >>> d.aggregate(g, jax.random.key(0))['w'].shape
    (4,)

  References:
    Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019, Sec. 5.
  """
  if (sigma is None) == (variance is None):
    raise ConfigError(
        'gaussian_noise takes exactly one of sigma (std) or variance, got '
        f'sigma={sigma!r}, variance={variance!r}.')
  if variance is not None:
    variance = check_real('variance', variance)
    if variance < 0:
      raise ConfigError(f'variance must be >= 0, got {variance}.')
    std = math.sqrt(variance)
    spec = {'name': 'gaussian', 'variance': variance}
  else:
    std = check_real('sigma', sigma)
    if std < 0:
      raise ConfigError(f'sigma must be >= 0, got {std}.')
    spec = {'name': 'gaussian', 'sigma': std}

  def aggregate(grads, key, *, batch_size=None):
    del batch_size
    if std == 0.0:
      return grads
    return _add_noise(grads, key, jax.random.normal, std)

  return Defense(aggregate=aggregate, specs=(spec,))


def laplacian_noise(scale: float) -> Defense:
  """Adds i.i.d. Laplace(0, scale) noise; its std is ``sqrt(2) * scale``.

  The DLG paper's second noise type. Same caveat as `gaussian_noise`: no
  clipping, hence no formal guarantee.

  Args:
    scale: the Laplace scale b, >= 0 (0 is the identity).

  Returns:
    A `Defense` acting on the aggregate stage.

  References:
    Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019, Sec. 5.
  """
  scale = check_real('scale', scale)
  if scale < 0:
    raise ConfigError(f'scale must be >= 0, got {scale}.')

  def aggregate(grads, key, *, batch_size=None):
    del batch_size
    if scale == 0.0:
      return grads
    return _add_noise(grads, key, jax.random.laplace, scale)

  return Defense(aggregate=aggregate, specs=({'name': 'laplacian',
                                              'scale': scale},))


def _quantize_int8(x: jax.Array) -> jax.Array:
  ct = _compute_dtype(x.dtype)
  x32 = x.astype(ct)
  scale = jnp.max(jnp.abs(x32)) / 127.0
  # An all-zero tensor has scale 0; dividing by 1 instead keeps it zero.
  safe = jnp.where(scale > 0, scale, jnp.ones_like(scale))
  q = jnp.clip(jnp.round(x32 / safe), -127, 127).astype(jnp.int8)
  return (q.astype(ct) * safe).astype(x.dtype)


def quantize(fmt: str) -> Defense:
  """Rounds every shared coordinate to a low-precision format and back.

  * ``'fp16'``, ``'bf16'``: IEEE half / bfloat16 cast with round-to-nearest-
    even, relative error <= 2^-11 / 2^-8 in the normal range. fp16 has a
    narrow range: |g| < 6.1e-5 loses relative precision (subnormals), |g| <
    3e-8 becomes 0 and |g| > 65504 becomes inf, as in a real fp16 channel.
  * ``'int8'``: symmetric per-tensor quantisation with scale
    ``max|g| / 127``; every coordinate moves by at most ``scale / 2``. An
    all-zero tensor stays zero.

  The output keeps the input dtype. The DLG paper found fp16/bf16 do not stop
  the attack.

  Args:
    fmt: one of ``'fp16'``, ``'bf16'``, ``'int8'``.

  Returns:
    A deterministic `Defense` acting on the aggregate stage.

  Example:
    >>> d = quantize('int8')
    >>> q = d.aggregate({'w': jnp.array([1.0, -0.5, 0.0])}, None)['w']
    >>> [round(v, 4) for v in q.tolist()]  # grid step 1/127
    [1.0, -0.5039, 0.0]

  References:
    Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019, Sec. 5.
  """
  if fmt not in QUANTIZE_FORMATS:
    raise ConfigError(
        f'unknown quantize format {fmt!r}; choose from {list(QUANTIZE_FORMATS)}.')
  if fmt == 'int8':
    leaf_fn = _quantize_int8
  else:
    low = jnp.float16 if fmt == 'fp16' else jnp.bfloat16

    def leaf_fn(x):
      # XLA may fold convert(convert(x, bf16), f32) into x when excess
      # precision is allowed (it does on GPU: openxla/xla#41605), which would
      # make this defense a silent no-op under jit. The barrier keeps the
      # narrowing cast. lax.reduce_precision would also survive, but it
      # flushes fp16 subnormals (|g| < 6.1e-5) to zero, unlike a real cast.
      return jax.lax.optimization_barrier(x.astype(low)).astype(x.dtype)

  def aggregate(grads, key, *, batch_size=None):
    del key, batch_size
    return jax.tree.map(leaf_fn, grads)

  return Defense(aggregate=aggregate, specs=({'name': 'quantize',
                                              'fmt': fmt},))


def _prune_leaf(x: jax.Array, sparsity: float) -> jax.Array:
  n = x.size
  # Nearest integer, half up (Python's round() is half-to-even); k is static.
  k = min(n, int(math.floor(sparsity * n + 0.5)))
  if k == 0:
    return x
  flat = x.reshape(-1)
  # Index-based, not a threshold: ties at the cut (e.g. many exact zeros)
  # still give exactly k zeros. argsort is stable, so ties resolve by index.
  smallest = jnp.argsort(jnp.abs(flat))[:k]
  return flat.at[smallest].set(0).reshape(x.shape)


def prune(sparsity: float) -> Defense:
  """Zeroes the smallest-magnitude entries of every tensor (gradient pruning).

  In each leaf of n entries the ``k = round(sparsity * n)`` entries of
  smallest |g| become 0 (exactly k, ties broken by position), the rest are
  kept bit for bit; so each tensor's fraction of zeros is ``sparsity`` up to
  ``1 / (2n)`` (more if the tensor already had more zeros). A tiny tensor may
  be zeroed completely, e.g. a size-1 bias at sparsity >= 0.5.

  The DLG paper's "gradient compression" (after Deep Gradient Compression):
  the attack fails above ~20% sparsity.

  Args:
    sparsity: fraction of entries to zero, in [0, 1).

  Returns:
    A deterministic `Defense` acting on the aggregate stage.

  Example:
    >>> d = prune(0.5)
    >>> d.aggregate({'w': jnp.array([0.1, -3.0, 2.0, -0.2])}, None)['w'].tolist()
    [0.0, -3.0, 2.0, 0.0]

  References:
    Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019, Sec. 5.
    Lin et al., "Deep Gradient Compression", ICLR 2018.
  """
  sparsity = check_real('sparsity', sparsity)
  if not 0.0 <= sparsity < 1.0:
    raise ConfigError(f'sparsity must be in [0, 1), got {sparsity}.')

  def aggregate(grads, key, *, batch_size=None):
    del key, batch_size
    return jax.tree.map(lambda x: _prune_leaf(x, sparsity), grads)

  return Defense(aggregate=aggregate, specs=({'name': 'prune',
                                              'sparsity': sparsity},))


def dp_sgd(clip_norm: float, noise_multiplier: float) -> Defense:
  """DP-SGD: clip each example's gradient, then add Gaussian noise to the mean.

  Per-example stage: every example's *global* L2 norm (over all leaves) is
  clipped to ``clip_norm`` C, i.e. it is scaled by ``min(1, C / ||g_i||)``;
  examples with norm <= C are returned unchanged (factor exactly 1), and an
  all-zero example stays zero.

  Aggregate stage: the mean of B clipped examples gets i.i.d. Gaussian noise of
  std ``noise_multiplier * C / B``, i.e. the sum gets ``z * C``. B reaches
  this stage as the keyword ``batch_size`` of ``aggregate`` (a static Python
  int); `Defense.apply` passes the leading axis of the per-example gradients.
  ``aggregate`` without ``batch_size`` raises ValueError.

  Formal guarantee: one step is the sampled Gaussian mechanism with
  sensitivity C for add/remove-one neighbours on the *sum*; with Poisson
  sampling of rate q over T steps, `accounting.dp_sgd_epsilon(z, q, T, delta)`
  gives the (epsilon, delta). A fixed B stands in for the expected batch size
  (as in most DP-SGD code). Transforms chained *after* dp_sgd are
  post-processing and keep the guarantee; data-dependent transforms chained
  *before* it on the aggregate stage (e.g. `prune`) change the sensitivity and
  void it.

  Edge cases: ``noise_multiplier == 0`` clips only (epsilon is inf); a
  non-finite example makes its factor NaN and the NaN propagates (it is not
  silently dropped, so a broken gradient is visible).

  Args:
    clip_norm: the per-example L2 bound C, finite and > 0.
    noise_multiplier: z >= 0, noise std relative to C.

  Returns:
    A `Defense` with ``needs_per_example=True``.

  Example:
    >>> d = dp_sgd(clip_norm=1.0, noise_multiplier=0.0)
    >>> g = {'w': jnp.array([[3.0, 4.0], [0.3, 0.4]])}  # B = 2 examples
    >>> clipped = d.per_example(g, None)['w']
    >>> [round(float(jnp.linalg.norm(row)), 4) for row in clipped]
    [1.0, 0.5]

  References:
    Abadi et al., "Deep Learning with Differential Privacy", CCS 2016,
    Algorithm 1 (arXiv:1607.00133).
  """
  clip_norm = check_real('clip_norm', clip_norm)
  if clip_norm <= 0:
    raise ConfigError(f'clip_norm must be > 0, got {clip_norm}.')
  noise_multiplier = check_real('noise_multiplier', noise_multiplier)
  if noise_multiplier < 0:
    raise ConfigError(f'noise_multiplier must be >= 0, got {noise_multiplier}.')

  def per_example(grads, key):
    del key
    leaves, treedef = jax.tree.flatten(grads)
    if not leaves:
      return grads
    b = _batch_size(grads)
    sq_norms = sum(
        jnp.sum(jnp.square(leaf.astype(_compute_dtype(leaf.dtype))).reshape(
            b, -1), axis=1) for leaf in leaves)
    # C / max(norm, C) is exactly 1 below C and never divides by zero.
    factor = clip_norm / jnp.maximum(jnp.sqrt(sq_norms), clip_norm)
    clipped = []
    for leaf in leaves:
      f = factor.reshape((b,) + (1,) * (leaf.ndim - 1))
      clipped.append(
          (leaf.astype(_compute_dtype(leaf.dtype)) * f).astype(leaf.dtype))
    return jax.tree.unflatten(treedef, clipped)

  def aggregate(grads, key, *, batch_size=None):
    if batch_size is None:
      raise ConfigError(
          'dp_sgd needs the batch size for its noise (std = z * C / B): call '
          'aggregate(grads, key, batch_size=B) or Defense.apply.')
    std = noise_multiplier * clip_norm / _check_batch_size(batch_size)
    if std == 0.0:
      return grads
    return _add_noise(grads, key, jax.random.normal, std)

  spec = {'name': 'dp_sgd', 'clip_norm': clip_norm,
          'noise_multiplier': noise_multiplier}
  return Defense(per_example=per_example, aggregate=aggregate, specs=(spec,),
                 needs_per_example=True)


def chain(*defenses: Defense) -> Defense:
  """Composes defenses in the given order, stage by stage.

  Both stages run the defenses' own stages in order: first defense first.
  Stage i gets ``fold_in(key, i)`` so stages draw independent noise, also when
  the same defense appears twice. ``chain()`` is the identity. Chaining always
  folds the key, so ``chain(d)`` draws different noise than ``d`` itself.

  Args:
    *defenses: `Defense` records.

  Returns:
    The composed `Defense`; its specs are the concatenation of the inputs'.

  Example:
    >>> d = chain(prune(0.5), quantize('fp16'))
    >>> [s['name'] for s in d.describe()]
    ['prune', 'quantize']
  """
  for d in defenses:
    if not isinstance(d, Defense):
      raise TypeError(f'chain takes Defense records, got {type(d).__name__}.')
  if not defenses:
    return identity()

  def per_example(grads, key):
    for i, d in enumerate(defenses):
      if d.needs_per_example:  # skip identities: no work, no trace
        grads = d.per_example(grads, jax.random.fold_in(key, i))
    return grads

  def aggregate(grads, key, *, batch_size=None):
    for i, d in enumerate(defenses):
      grads = d.aggregate(grads, jax.random.fold_in(key, i),
                          batch_size=batch_size)
    return grads

  specs = tuple(spec for d in defenses for spec in d.specs)
  needs = any(d.needs_per_example for d in defenses)
  return Defense(
      per_example=per_example if needs else _identity_per_example,
      aggregate=aggregate, specs=specs, needs_per_example=needs)


# ----------------------------------------------------------------------------
# Registry.
# ----------------------------------------------------------------------------

DEFENSES: dict[str, Callable[..., Defense]] = {
    'gaussian': gaussian_noise,
    'laplacian': laplacian_noise,
    'quantize': quantize,
    'prune': prune,
    'dp_sgd': dp_sgd,
}


def build(specs: Sequence[Mapping[str, Any]]) -> Defense:
  """Builds the chain described by config specs, in order.

  Args:
    specs: e.g. ``[{'name': 'dp_sgd', 'clip_norm': 1.0,
      'noise_multiplier': 1.1}, {'name': 'quantize', 'fmt': 'bf16'}]``; the
      options are the keyword arguments of ``DEFENSES[name]``. Any mapping
      works (dicts, ConfigDicts). An empty sequence is no defense.

  Returns:
    ``chain(*defenses)``; ``build(d.describe())`` rebuilds ``d``.

  Raises:
    ValueError: an unknown name or option, a missing option or a bad value.

  Example:
    >>> build([{'name': 'prune', 'sparsity': 0.2}]).describe()
    [{'name': 'prune', 'sparsity': 0.2}]
  """
  if isinstance(specs, (Mapping, str)) or not isinstance(specs, Sequence):
    raise ConfigError(
        f'defense specs must be a list of mappings, got {type(specs).__name__};'
        " e.g. [{'name': 'gaussian', 'sigma': 0.01}].")
  defenses = []
  for i, spec in enumerate(specs):
    try:
      options = dict(spec)
    except (TypeError, ValueError):
      raise ConfigError(
          f'defense spec {i} must be a mapping, got {spec!r}.') from None
    name = options.pop('name', None)
    if name not in DEFENSES:
      raise ConfigError(
          f'unknown defense {name!r} in spec {i}; choose from '
          f'{sorted(DEFENSES)}.')
    factory = DEFENSES[name]
    params = list(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - set(params))
    if unknown:
      raise ConfigError(
          f'unknown option(s) {unknown} for defense {name!r}; options are '
          f'{params}.')
    try:
      defenses.append(factory(**options))
    except TypeError as e:  # e.g. a missing required option
      raise ConfigError(
          f'defense {name!r}: {e}; options are {params}.') from None
  return chain(*defenses)
