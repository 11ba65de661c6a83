"""Label recovery from the shared gradient of the classifier layer.

`idlg_label` reads one example's label (iDLG); `batch_labels` reads the B
labels of a batch (Yin et al.'s negative rows + Geng et al.'s counts);
`recover_labels` is what an attack fixes before optimising, by its
`attack.labels` mode.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp

from dlg_jax.errors import ConfigError
from dlg_jax.types import ClientUpdate, PyTree

# attack.labels: 'optimize' (DLG's dummy label logits), 'idlg' (read off the
# output layer's gradient; the batch rule for B > 1), 'known' (revealed).
LABEL_MODES = ('optimize', 'idlg', 'known')
# Folded into the attacker's key for the dummy inputs of batch label recovery;
# victim indices (folded in for the lanes) stay far below it.
LABEL_STREAM = 0x7FFFFFFF


def classifier_path(params: PyTree, num_classes: int) -> tuple[str, ...]:
  """Path of the output layer's kernel: the 2-D (in, num_classes) kernel.

  Auxiliary heads (Inception's 'aux') are skipped; among several candidates
  the last in key order wins (gradients come back with sorted keys).

  Raises:
    ConfigError: no dense output layer with `num_classes` units exists.
  """
  flat = traverse_util.flatten_dict(params)
  candidates = [path for path, leaf in flat.items()
                if path[-1] == 'kernel' and leaf.ndim == 2 and leaf.shape[-1] == num_classes
                and not any('aux' in part.lower() for part in path)]
  if not candidates:
    raise ConfigError(
        f'no dense output layer with {num_classes} units found; label recovery '
        'from gradients needs one (or set attack.labels="known").')
  return candidates[-1]


def idlg_label(grads: PyTree, num_classes: int, *, signed_features: bool = False) -> jax.Array:
  """iDLG's label of a single example from the output layer's gradient.

  For softmax cross-entropy the output kernel's gradient is the rank-one
  matrix h (p − y)ᵀ (features × classes) and the bias gradient is p − y,
  whose only negative entry is the true class.

  With non-negative features h (ReLU, sigmoid, dropout-scaled) every column's
  sum has the sign of p_k − y_k, so the true class is the column with the
  negative sum: iDLG's rule, which adds up all F features coherently and is
  the most noise-tolerant reading when its assumption holds.

  With signed features (a ViT head reads LayerNorm'd features) the column sums
  carry an unknown sign, and iDLG's rule can pick a wrong class. Then the
  top right singular vector v of the kernel gradient is ±(p − y)/|p − y|; the
  sign is fixed by the bias gradient where the layer has a bias (v·b > 0),
  and the label is argmin of the signed v. Without a bias the true class is
  still the entry of largest magnitude (|p_y − 1| = Σ_{k≠y} p_k ≥ any p_k).

  Args:
    grads: one example's shared gradient (params pytree).
    num_classes: C.
    signed_features: whether the features entering the output layer can be
      negative (`Model.signed_features`).

  References:
    Zhao, Mopuri, Bilen, "iDLG: Improved Deep Leakage from Gradients", 2020.
  """
  flat = traverse_util.flatten_dict(grads)
  path = classifier_path(grads, num_classes)
  kernel = flat[path]
  if not signed_features:
    return jnp.argmin(jnp.sum(kernel, axis=0)).astype(jnp.int32)
  _, _, vt = jnp.linalg.svd(kernel, full_matrices=False)
  v = vt[0]
  if bias_path(path) in flat:
    sign = jnp.where(jnp.dot(v, flat[bias_path(path)]) < 0, -1.0, 1.0)
    return jnp.argmin(sign * v).astype(jnp.int32)
  return jnp.argmax(jnp.abs(v)).astype(jnp.int32)


def bias_path(kernel_path: tuple[str, ...]) -> tuple[str, ...]:
  """The bias beside a dense kernel."""
  return (*kernel_path[:-1], 'bias')


def mean_probabilities(model, variables: PyTree, key: jax.Array, *, count: int = 64,
                       train: bool = True) -> jax.Array:
  """The model's mean softmax over `count` U(0, 1) dummy images, (num_classes,).

  The attacker's estimate p̂ of how much probability the model puts on each
  class, for `batch_labels` (Geng et al. 2021 feed dummy data the same way).
  """
  x = jax.random.uniform(key, (count, *model.input_shape))
  return jnp.mean(jax.nn.softmax(model.apply(variables, x, train=train)), axis=0)


def batch_labels(grads: PyTree, num_classes: int, batch_size: int,
                 mean_probs: jax.Array, *, signed_features: bool = False) -> jax.Array:
  """The B labels of a batch from the output layer's gradient (a multiset).

  For softmax cross-entropy over a batch, the output layer's gradients are
  dW_k = (1/B) Σᵢ (p_ik − y_ik) hᵢ and db_k = (1/B) Σᵢ (p_ik − y_ik), with hᵢ the
  penultimate features. Two published rules, in this order:

  1. Yin et al. 2021 (GradInversion, "batch-wise label restoration"): with
     non-negative features (ReLU, sigmoid) a class absent from the batch has
     a row dW_k ≥ 0 entrywise, so every class whose row has a negative
     minimum is present — no false positives, for any B. It misses a present
     class whose own term is outweighed by the others' p_ik hᵢ, which happens
     when the model is confident in that class (e.g. the randomly
     initialised DLG LeNet, ≈0.8 mean top probability).
  2. The remaining slots are filled by the count estimate of Geng et al. 2021
     (also Wainakh et al.'s LLG): n̂_k = B (p̂_k − db_k), with p̂ the model's mean
     softmax on dummy inputs (`mean_probabilities`), exact when every example
     gives class k probability p̂_k. Greedily, each slot goes to the class with
     the largest n̂_k − (labels already given to k), so repeated labels are
     possible. Without a bias in the output layer the fill uses rule 1's
     ranking (lowest row minimum).

  For B = 1 rule 1 alone gives iDLG's answer (the present row is (p − 1)h < 0).
  Measured on the offline photos, 10 random inits × B ∈ {2, 3, 4, 8}, for the
  DLG LeNet and ReLU LeNet-5 at 16 and 32 px: exact on 40/40 batches with
  distinct labels and on 40/40 with one label repeated, per model and size;
  rule 1 alone failed 10 of 30 (B ∈ {2, 4, 8}) on the DLG LeNet at 32 px
  (BUILD_NOTES.md, "Batches and FedAvg").

  Args:
    grads: one victim's shared gradient (params pytree, no victim axis).
    num_classes: C; batch_size: B (static).
    mean_probs: (C,) p̂.
    signed_features: the features entering the output layer can be negative
      (a ViT): rule 1 does not hold, so every slot comes from rule 2, which
      needs the output layer's bias.

  Returns:
    (B,) int32 labels: rule-1 classes first (most negative minimum first).

  References:
    Yin, Mallya, Vahdat, Alvarez, Kautz, Molchanov, "See through Gradients:
    Image Batch Recovery via GradInversion", CVPR 2021.
    Geng, Mou, Li, Li, Xu, Zhou, "Towards General Deep Leakage in Federated
    Learning", 2021 (arXiv:2110.09074).
    Wainakh, Ventola, Müßig, Keim, Garcia Cordero, Zimmer, Grube, Kersting,
    Mühlhäuser, "User-Level Label Leakage from Gradients in Federated
    Learning", PETS 2022.
  """
  flat = traverse_util.flatten_dict(grads)
  path = classifier_path(grads, num_classes)
  row_min = jnp.min(flat[path], axis=0)  # kernel is (features, C)
  if signed_features and bias_path(path) not in flat:
    raise ConfigError('batch label recovery for a model with signed features needs a bias in '
                      'the output layer; set attack.labels="known".')
  present = (row_min < 0) & (not signed_features)
  order = jnp.argsort(jnp.where(present, row_min, jnp.inf))
  num_present = jnp.minimum(jnp.sum(present), batch_size)
  if bias_path(path) in flat:
    estimate = batch_size * (mean_probs - flat[bias_path(path)])
  else:
    estimate = -row_min
  counts = jnp.zeros(num_classes, jnp.float32)
  picked = []
  for b in range(batch_size):  # B is small and static
    certain = order[min(b, num_classes - 1)]
    pick = jnp.where(b < num_present, certain, jnp.argmax(estimate - counts))
    counts = counts.at[pick].add(1.0)
    picked.append(pick)
  return jnp.stack(picked).astype(jnp.int32)


def recover_labels(update: ClientUpdate, label_mode: str, *, model=None,
                   variables: PyTree | None = None, key: jax.Array | None = None,
                   train: bool = True) -> jax.Array | None:
  """(V, B) labels the attack fixes before optimising, or None to optimise them.

  'idlg' reads them off the output layer's shared gradient: iDLG's rule for
  B = 1, `batch_labels` (Yin et al. 2021 + Geng et al. 2021) for B > 1, which
  needs `model`, `variables` and `key` for its dummy-input estimate of the
  model's class probabilities (BatchNorm mode `train`). Under FedAvg the
  update is the mean of the K local gradients; with non-negative features
  every local step's absent-class rows stay ≥ 0 and the present row of a
  single example < 0, so iDLG's rule and Yin et al.'s rule hold for any K
  and η; the count estimate uses p̂ at the sent weights, an approximation
  once the local steps move the probabilities.
  """
  if label_mode == 'optimize':
    return None
  if label_mode == 'known':
    if update.known_labels is None:
      raise ConfigError('attack.labels="known" but the client update reveals no labels; '
                        'set client.reveal_labels=True or use attack.labels="idlg".')
    return update.known_labels
  signed = bool(getattr(model, 'signed_features', False))
  if update.batch_size == 1:
    read = jax.vmap(lambda g: idlg_label(g, update.num_classes, signed_features=signed))
    return read(update.gradients)[:, None]
  if model is None or variables is None or key is None:
    raise ConfigError(f'batch label recovery (attack.labels="idlg", batch size '
                      f'{update.batch_size}) needs the model, its variables and a key.')
  probs = mean_probabilities(model, variables, key, train=train)
  read = jax.vmap(lambda g: batch_labels(g, update.num_classes, update.batch_size, probs,
                                         signed_features=signed))
  return read(update.gradients)


def attack_labels(update: ClientUpdate, config: Mapping[str, Any], model, variables: PyTree,
                  key: jax.Array) -> jax.Array | None:
  """`recover_labels` for a completed attack config, on the attacker's label stream."""
  return recover_labels(update, config['labels'], model=model, variables=variables,
                        key=jax.random.fold_in(key, LABEL_STREAM), train=bool(config['train']))
