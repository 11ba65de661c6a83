"""The order in which a forward pass uses its parameters.

A params pytree sorts its leaves alphabetically (a ResNet's 'fc' before its
'stem_conv'); what is "the first layer" or "the last" is instead the order
the forward pass reads them. Inverting Gradients' per-layer weights
(`attacks.objectives.weights_by_use`) need that order, and the scanned
models (DenseNet's segments, ViT's blocks) keep it by reading each stacked
layer's variables in turn. It lives beside the models, which depend on
nothing in `attacks`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.extend import core as jax_core

from dlg_jax.types import PyTree


def use_order(fn: Callable[[PyTree], object], tree: PyTree) -> tuple[int, ...]:
  """Rank of each leaf of `tree` by when `fn(tree)` first uses it.

  Traces `fn` (no computation) and walks its jaxpr, nested calls included;
  a leaf that `fn` never reads ranks last. For a model's forward pass this is
  the layer order from input to output, which per-layer weights need and the
  alphabetical leaf order of a params dict does not give.

  >>> import jax.numpy as jnp
  >>> use_order(lambda t: t['a'] @ (t['b'] * 2), {'a': jnp.ones(2), 'b': jnp.ones((2, 2))})
  (1, 0)
  """
  leaves = jax.tree.leaves(tree)
  closed = jax.make_jaxpr(lambda *xs: fn(jax.tree.unflatten(jax.tree.structure(tree), xs)))(
      *leaves)
  first: dict[int, int] = {}
  clock = [0]

  def walk(jaxpr: jax_core.Jaxpr, tracked: dict) -> None:
    for eqn in jaxpr.eqns:
      inner = [j for j in jax_core.jaxprs_in_params(eqn.params) if len(j.invars) == len(eqn.invars)]
      if inner:  # a nested call: follow the leaves into its body
        for sub in inner:
          walk(sub, {iv: tracked[ov] for ov, iv in zip(eqn.invars, sub.invars)
                     if isinstance(ov, jax_core.Var) and ov in tracked})
      else:
        for v in eqn.invars:
          if isinstance(v, jax_core.Var) and v in tracked:
            first.setdefault(tracked[v], clock[0])
      clock[0] += 1

  walk(closed.jaxpr, {v: i for i, v in enumerate(closed.jaxpr.invars)})
  never = clock[0] + 1
  by_use = sorted(range(len(leaves)), key=lambda i: (first.get(i, never), i))
  ranks = [0] * len(leaves)
  for rank, i in enumerate(by_use):
    ranks[i] = rank
  return tuple(ranks)


def in_use_order(tree: PyTree, ranks: tuple[int, ...]) -> PyTree:
  """`tree` with each leaf passed through a no-op, in the order of `ranks` (`use_order`'s).

  A scanned model stacks its layers' variables, which would read every
  layer's at once; reading each layer's through this, layer after layer,
  keeps the order `use_order` sees that of the unrolled model.

  >>> import jax.numpy as jnp
  >>> tree = {'a': jnp.ones(2), 'b': jnp.zeros(2)}
  >>> use_order(lambda t: in_use_order(t, (1, 0))['a'] + 0, tree)
  (1, 0)
  """
  leaves, structure = jax.tree.flatten(tree)
  touched = [None] * len(leaves)
  for i in sorted(range(len(leaves)), key=lambda i: ranks[i]):
    touched[i] = jax.lax.pad(leaves[i], jnp.zeros((), leaves[i].dtype),
                             [(0, 0, 0)] * leaves[i].ndim)
  return jax.tree.unflatten(structure, touched)
