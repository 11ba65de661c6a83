"""Records passed between the five hops of an experiment.

The threat model lives in these types: an attack receives a `ClientUpdate`
(what the server sees) and nothing else; only `metrics` gets the `Private`
ground truth as well.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias

import jax
import numpy as np

PyTree: TypeAlias = Any


class Dataset(NamedTuple):
  """Labelled images on the host, pixels in [0, 1]."""
  images: np.ndarray  # (N, H, W, C) float32 in [0, 1]
  labels: np.ndarray  # (N,) int32
  num_classes: int
  names: tuple[str, ...]  # one per image, for reports


class Private(NamedTuple):
  """Ground truth of every victim; seen by the client and the metrics only."""
  images: jax.Array  # (V, B, H, W, C) in [0, 1]
  labels: jax.Array  # (V, B) int32


class Protocol(NamedTuple):
  """The federated round the server runs; public, so the attacker knows it.

  fedsgd: the client shares one gradient of its batch loss. fedavg: it takes
  `local_steps` full-batch SGD steps at `local_lr` and shares the weight
  change; see `client/protocol.py` for the convention.
  """
  name: str = 'fedsgd'  # fedsgd | fedavg
  local_steps: int = 1
  local_lr: float = 0.1


class ClientUpdate(NamedTuple):
  """What the server receives from each victim, plus public metadata."""
  gradients: PyTree  # leaves carry a leading victim axis V (what `protocol` shares)
  batch_size: int
  input_shape: tuple[int, int, int]  # (H, W, C) of one example
  num_classes: int
  protocol: Protocol = Protocol()  # how `gradients` came about (public)
  known_labels: jax.Array | None = None  # (V, B) when the threat model reveals labels
  # The client's dropout masks (leading victim axis) when the threat model
  # reveals them: the masks-known upper bound (WIIG) of the DIA paper.
  known_masks: PyTree | None = None
  # Global index of each victim (V,) int32, public bookkeeping: per-victim keys
  # fold these in, so a victim's run does not depend on which chunk, device or
  # host processed it. None means arange(V).
  victim_ids: jax.Array | None = None


class AttackResult(NamedTuple):
  """An attack's best reconstruction per victim and how it got there."""
  images: jax.Array  # (V, B, H, W, C) in [0, 1]
  labels: jax.Array  # (V, B) int32, recovered
  loss: jax.Array  # (V,) final gradient-matching loss of the kept restart
  iterations: jax.Array  # (V,) optimiser iterations run by the kept restart
  evaluations: jax.Array  # (V,) loss-and-gradient evaluations of the kept restart
  diverged: jax.Array  # (V,) bool: every restart ended non-finite
  loss_trace: np.ndarray  # (V, T) matching loss per iteration, NaN after a stop
  snapshots: tuple[tuple[int, np.ndarray], ...]  # (iteration, (V, B, H, W, C))


class Scores(NamedTuple):
  """Per-victim metrics, host numpy."""
  mse: np.ndarray
  psnr: np.ndarray
  ssim: np.ndarray
  label_correct: np.ndarray  # fraction of each victim's labels recovered
  diverged: np.ndarray
  iterations: np.ndarray
  loss: np.ndarray
  mse_trace: tuple[tuple[int, np.ndarray], ...]  # (iteration, (V,) MSE)
  # Images of each victim's batch recovered exactly (max abs pixel error below
  # `metrics.EXACT_TOLERANCE` after matching), and that count over the batch
  # size; None in Scores made before these existed (old chunk files).
  exact_recovered: np.ndarray | None = None  # (V,) int
  exact_recall: np.ndarray | None = None  # (V,) float
