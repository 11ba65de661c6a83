"""Attack programs stored on disk as traced StableHLO, so that a warm start traces nothing.

JAX's persistent compilation cache skips XLA's compile, but a run still
traces and lowers each program in Python before it can ask the cache, and
for the double backward of a deep model that was most of a warm start.
`stored` keeps the traced program itself (`jax.export`) beside the
compilation cache; the L-BFGS chunk's warm start, one core, back to back
with and without it (docs/results/throughput.md): ResNet-18 CIFAR 6.9 →
1.5 s, DenseNet-121 at 224 px 16.3–16.8 → 5.3–6.1 s (5.4–5.8 s on a quiet
machine since its first blocks are unrolled, 21f4585), Inception-v3 at 299
px 30.7 → 8.6–10.7 s (6.7–7.1 s on a quiet machine, 2026-12-04). What is
left is XLA:CPU rebuilding the cached executable's thunks (BUILD_NOTES.md,
"Throughput"). The program's file is named by a hash of everything the
program depends on:

* the program's identity, which the caller builds with `fingerprint` from
  the objects the program closes over (the solver, its settings, the loss
  with its model);
* the code: every source file of dlg_jax, and the versions of jax, jaxlib,
  flax, optax, chex and numpy;
* the backend, its device kind and the JAX flags that change a trace;
* the arguments' tree, shapes and dtypes, and the static keyword arguments.

A warm start then deserialises the program and lowers a call to it, which
hits the compilation cache. What `fingerprint` cannot pin down gets no
stored program and traces as before: a model class defined outside dlg_jax
(a researcher's own Flax module), a lambda or a closure, arguments spread
over several devices, a call under another transformation. The store is on
exactly when the compilation cache is (`run.compilation_cache`; "" turns
both off). Its files are as trusted as the cache's executables beside them,
which JAX runs as machine code.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import logging
import os
import pickle
import types
from typing import Any, Callable, Sequence

import jax
import numpy as np

from dlg_jax import files

SUBDIR = 'dlg_jax_programs'  # inside the compilation cache's folder
_FORMAT = 1  # bump when the file's layout changes
# The store's size bound when JAX's own cache has none (`jax_compilation_cache_max_size`
# -1, its default): every edit of dlg_jax keys new entries, so without a bound
# the folder would only grow. The largest entries measured are DenseNet-121's
# L-BFGS programs at 224 px, 0.13 and 0.87 MB: the bound holds ≈300 of them.
DEFAULT_MAX_BYTES = 256 << 20
# Code from these packages is pinned by their versions (`_environment`), dlg_jax's by its source.
_PINNED = ('dlg_jax', 'jax', 'jaxlib', 'flax', 'optax', 'chex', 'numpy', 'builtins')
_FLAGS = ('jax_enable_x64', 'jax_default_matmul_precision', 'jax_default_prng_impl',
          'jax_numpy_dtype_promotion', 'jax_numpy_rank_promotion', 'jax_threefry_partitionable')


class _Unpinned(Exception):
  """An object whose behaviour is not determined by pinned code and plain values."""


def fingerprint(obj: Any) -> str | None:
  """A text that changes whenever `obj` could make a traced program differ; None if unknown.

  Plain values by value, arrays by their bytes, dataclasses (Flax modules
  too) and named tuples by class and fields, functions and classes by name,
  the latter only when defined at the top level of a package whose code is
  pinned (dlg_jax, jax, flax, optax, chex, numpy).

  >>> from dlg_jax.types import Protocol
  >>> fingerprint((Protocol(), 'l2', 0.5))
  "tuple(dlg_jax.types.Protocol(name='fedsgd',local_steps=1,local_lr=0.1),'l2',0.5)"
  >>> fingerprint(lambda x: x) is None
  True
  """
  try:
    return _describe(obj)
  except _Unpinned:
    return None


def _name(obj: Any) -> str:
  module = getattr(obj, '__module__', None) or ''
  qualname = getattr(obj, '__qualname__', None) or ''
  if module.split('.')[0] not in _PINNED or not qualname or '<' in qualname:
    raise _Unpinned(f'{module}.{qualname}')
  return f'{module}.{qualname}'


def _describe(obj: Any) -> str:
  if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
    return repr(obj)
  if isinstance(obj, enum.Enum):
    return f'{_name(type(obj))}.{obj.name}'
  if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
    array = np.asarray(obj)
    return f'array({array.dtype},{array.shape},{hashlib.sha256(array.tobytes()).hexdigest()})'
  if isinstance(obj, tuple) and hasattr(obj, '_fields'):  # a named tuple
    return _name(type(obj)) + '(' + ','.join(
        f'{f}={_describe(getattr(obj, f))}' for f in obj._fields) + ')'
  if isinstance(obj, (tuple, list)):
    return type(obj).__name__ + '(' + ','.join(map(_describe, obj)) + ')'
  if isinstance(obj, dict):
    items = sorted((_describe(k), _describe(v)) for k, v in obj.items())
    return 'dict(' + ','.join(f'{k}:{v}' for k, v in items) + ')'
  if isinstance(obj, functools.partial):
    return (f'partial({_describe(obj.func)},{_describe(obj.args)},'
            f'{_describe(dict(obj.keywords))})')
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    # A Flax module's `parent` is where it is bound, not what it computes.
    return _name(type(obj)) + '(' + ','.join(
        f'{f.name}={_describe(getattr(obj, f.name))}' for f in dataclasses.fields(obj)
        if f.name != 'parent') + ')'
  if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) or (
      callable(obj) and hasattr(obj, '__qualname__')):
    return _name(obj)
  raise _Unpinned(type(obj).__name__)


@functools.lru_cache(maxsize=None)
def _source_hash() -> str:
  """sha256 over every dlg_jax source file (path and content)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  digest = hashlib.sha256()
  for folder, dirs, names in sorted(os.walk(root)):
    dirs.sort()
    for file in sorted(f for f in names if f.endswith('.py')):
      path = os.path.join(folder, file)
      digest.update(os.path.relpath(path, root).encode())
      with open(path, 'rb') as f:
        digest.update(f.read())
  return digest.hexdigest()


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return '-'


def _environment() -> str:
  """Everything outside the program's own objects that a trace depends on."""
  versions = [f'{p}={_version(p)}' for p in ('jax', 'jaxlib', 'flax', 'optax', 'chex', 'numpy')]
  flags = [f'{f}={getattr(jax.config, f, None)}' for f in _FLAGS]
  device = jax.devices()[0]
  return '|'.join([_source_hash(), *versions, device.platform, device.device_kind, *flags])


def cache_folder() -> str:
  """The compilation cache's folder ('' when it is off): the store lives inside it."""
  return jax.config.jax_compilation_cache_dir or ''


def stored(fn: Callable, identity: str | None,
           donate_argnums: Sequence[int] = ()) -> Callable:
  """`fn` (a `jax.jit`ted function), its traces kept on disk under `identity`.

  Calls take `fn`'s positional array arguments and static keyword
  arguments. `identity` (from `fingerprint`) must pin down everything `fn`
  closes over; None returns `fn` itself. `donate_argnums` are `fn`'s
  donated positional arguments (a stored program is called through a jit
  of its own, which must donate them again).
  """
  if identity is None:
    return fn
  memo: dict[Any, Callable] = {}

  @functools.wraps(fn)
  def call(*args, **static):
    folder = cache_folder()
    leaves, in_tree = jax.tree.flatten(args)
    if not folder or not all(_storable(x) for x in leaves):
      return fn(*args, **static)
    avals = tuple(jax.typeof(x) for x in leaves)  # shape, dtype, weak type
    key = (in_tree, avals, tuple(sorted(static.items())))
    program = memo.get(key)
    if program is None:
      program = memo[key] = _program(fn, identity, folder, in_tree, leaves, avals, static,
                                     _leaf_indices(args, donate_argnums))
    return program(leaves)

  return call


def _storable(x: Any) -> bool:
  if isinstance(x, jax.core.Tracer):
    return False  # called under another transformation: its trace is the outer one's
  if isinstance(x, jax.Array):
    return len(x.sharding.device_set) == 1
  return isinstance(x, (np.ndarray, np.generic, bool, int, float))


def _leaf_indices(args: tuple, positions: Sequence[int]) -> tuple[int, ...]:
  out, start = [], 0
  for i, arg in enumerate(args):
    count = len(jax.tree.leaves(arg))
    if i in positions:
      out.extend(range(start, start + count))
    start += count
  return tuple(out)


def _program(fn: Callable, identity: str, folder: str, in_tree, leaves, avals, static,
             donated: tuple[int, ...]) -> Callable:
  """The stored program for these arguments: read from disk, or traced and written there."""
  text = '\n'.join([f'format {_FORMAT}', identity, _environment(), str(in_tree), repr(avals),
                    repr(sorted(static.items()))])
  path = os.path.join(folder, SUBDIR, hashlib.sha256(text.encode()).hexdigest() + '.jaxexport')
  exported, out_tree = _read(path, text)
  if exported is None:
    out_trees = []

    def flat(*xs):
      out_leaves, tree = jax.tree.flatten(fn(*jax.tree.unflatten(in_tree, xs), **static))
      out_trees.append(tree)
      return out_leaves

    try:
      exported = jax.export.export(jax.jit(flat))(*leaves)
      blob = exported.serialize()
    except Exception as e:  # pylint: disable=broad-except
      # An export limit (a custom call without a stable target, serialisation
      # not installed) must not stop a run; `fn` itself raises any real error.
      logging.warning('not storing the traced %s (%s: %s); it traces on every start.',
                      getattr(fn, '__name__', 'program'), type(e).__name__, e)
      return lambda xs: fn(*jax.tree.unflatten(in_tree, xs), **static)
    out_tree = out_trees[-1]
    _write(path, pickle.dumps({'key': text, 'out_tree': out_tree, 'exported': bytes(blob)}))
    _prune(os.path.dirname(path), keep=path)
  call = jax.jit(exported.call, donate_argnums=donated)
  return lambda xs: jax.tree.unflatten(out_tree, call(*xs))


def _read(path: str, text: str):
  """(exported, out_tree) stored at `path` for key `text`, or (None, None)."""
  try:
    with open(path, 'rb') as f:
      entry = pickle.load(f)
    if entry['key'] != text:  # a hash collision, or a file from elsewhere
      return None, None
    try:
      os.utime(path)  # its last use, which `_prune` keeps longest
    except OSError:
      pass  # a read-only store still serves
    return jax.export.deserialize(bytearray(entry['exported'])), entry['out_tree']
  except (FileNotFoundError, NotADirectoryError):
    return None, None
  except Exception as e:  # pylint: disable=broad-except
    # A damaged entry (a run killed mid-write elsewhere) is traced again and replaced.
    logging.warning('stored program %s unreadable (%s: %s); tracing it again.', path,
                    type(e).__name__, e)
    return None, None


def _write(path: str, data: bytes) -> None:
  """Writes atomically (rename), so that a killed run or a concurrent one leaves no half file."""
  def write(tmp: str) -> None:
    with open(tmp, 'wb') as f:
      f.write(data)
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files.atomic_write(path, write)
  except OSError as e:
    logging.warning('could not store the traced program in %s (%s); it traces on every start.',
                    os.path.dirname(path), e.strerror)


def max_bytes() -> int:
  """The store's size bound: JAX's cache bound where one is set, else `DEFAULT_MAX_BYTES`."""
  limit = int(jax.config.jax_compilation_cache_max_size)
  return limit if limit > 0 else DEFAULT_MAX_BYTES


def _prune(folder: str, keep: str) -> None:
  """Removes the least recently used programs until the folder fits `max_bytes()`.

  A read marks its file used (`_read` touches it), so what goes first is what
  an older dlg_jax or another model wrote and nothing has read since; `keep`,
  the program just written, stays whatever its size. Best effort: a file
  another process removed or holds is skipped.
  """
  entries = []
  try:
    with os.scandir(folder) as listing:
      for entry in listing:
        if entry.name.endswith('.jaxexport') and entry.path != keep:
          stat = entry.stat()
          entries.append((stat.st_mtime, stat.st_size, entry.path))
    total = sum(size for _, size, _ in entries) + os.path.getsize(keep)
  except OSError:
    return
  for _, size, path in sorted(entries):
    if total <= max_bytes():
      break
    try:
      os.remove(path)
      total -= size
    except OSError:
      pass
