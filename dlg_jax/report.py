"""Everything a run leaves in its workdir, and the table it prints.

Files: config.json, metrics.json (summary + one record per victim),
curves.json (MSE to the private images per recorded iteration), reconstructions.npz, grid.png (each victim above its reconstruction) and
curves.png (matching loss and MSE per iteration). Each file is written to a
temporary name and renamed, so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from dlg_jax import files
from dlg_jax import metrics
from dlg_jax.types import AttackResult, Private, Scores


def _json_safe(value: Any) -> Any:
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  return value


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON; non-finite floats become null."""
  def write(tmp):
    with open(tmp, 'w') as f:
      json.dump(_json_safe(obj), f, indent=2, sort_keys=False)
      f.write('\n')
  files.atomic_write(path, write)


def write_text(path: str, text: str) -> None:
  """Writes `text` (UTF-8) atomically."""
  def write(tmp):
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
  files.atomic_write(path, write)


def save_figure(path: str, fig, dpi: int = 100) -> None:
  """Saves a matplotlib figure as PNG atomically (the figure stays open)."""
  files.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format='png'))


def victim_records(scores: Scores, names: tuple[str, ...], result: AttackResult,
                   truth: Private) -> list[dict[str, Any]]:
  """One JSON-able record per victim.

  `scored` is False for a failed reconstruction (`metrics.scored`), whose
  MSE, PSNR and SSIM are NaN (null in JSON); an exact one has PSNR +inf,
  also null in JSON, but MSE 0 and `scored` True.
  """
  records = []
  ok = metrics.scored(scores)
  for v in range(len(scores.mse)):
    records.append({
        'victim': v,
        'images': list(names[v]) if isinstance(names[v], tuple) else names[v],
        'mse': float(scores.mse[v]),
        'psnr': float(scores.psnr[v]),
        'ssim': float(scores.ssim[v]),
        'scored': bool(ok[v]),
        'label_correct': float(scores.label_correct[v]),
        'true_labels': np.asarray(truth.labels[v]).tolist(),
        'recovered_labels': np.asarray(result.labels[v]).tolist(),
        'diverged': bool(scores.diverged[v]),
        'iterations': int(scores.iterations[v]),
        'evaluations': int(np.asarray(result.evaluations)[v]),
        'matching_loss': float(scores.loss[v]),
    })
    if scores.exact_recovered is not None:
      records[-1].update(exact_recovered=int(scores.exact_recovered[v]),
                         exact_recall=float(scores.exact_recall[v]))
  return records


def save_reconstructions(path: str, result: AttackResult, truth: Private) -> None:
  def write(tmp):
    with open(tmp, 'wb') as f:
      np.savez_compressed(f, ground_truth=np.asarray(truth.images),
                          reconstructions=np.asarray(result.images),
                          true_labels=np.asarray(truth.labels),
                          recovered_labels=np.asarray(result.labels))
  files.atomic_write(path, write)


# Images shown in grid.png at most (the first ones; all are in reconstructions.npz):
# 100 batches of 64 would take matplotlib many minutes. 256 keeps every
# earlier run's grid (the largest had 256 victims of one image) as it was.
MAX_GRID_IMAGES = 256


def save_grid(path: str, truth: np.ndarray, rec: np.ndarray, psnr: np.ndarray,
              max_columns: int = 16) -> None:
  """Ground truth (top) above reconstruction (bottom), one column per image (the first 256)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  truth = truth.reshape(-1, *truth.shape[2:])
  rec = rec.reshape(-1, *rec.shape[2:])
  per_image_psnr = np.repeat(psnr, len(truth) // len(psnr))[:MAX_GRID_IMAGES]
  truth, rec = truth[:MAX_GRID_IMAGES], rec[:MAX_GRID_IMAGES]
  n = len(truth)
  cols = min(n, max_columns)
  rows = 2 * math.ceil(n / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.3 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis('off')
  for i in range(n):
    r, c = 2 * (i // cols), i % cols
    for row, img in ((r, truth[i]), (r + 1, rec[i])):
      img = np.clip(img, 0, 1)
      axes[row, c].imshow(img[..., 0] if img.shape[-1] == 1 else img,
                          cmap='gray' if img.shape[-1] == 1 else None, vmin=0, vmax=1)
    axes[r + 1, c].set_title(f'{per_image_psnr[i]:.1f} dB', fontsize=7)
  fig.suptitle('top: private image   bottom: reconstruction (PSNR)', fontsize=8)
  fig.tight_layout()
  files.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format='png'))
  plt.close(fig)


def save_curves(path: str, loss_trace: np.ndarray, mse_trace) -> None:
  """Matching loss per iteration and MSE per logged iteration, one line per victim."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
  for v in range(loss_trace.shape[0]):
    ax1.plot(np.arange(1, loss_trace.shape[1] + 1), loss_trace[v], lw=0.8)
  if np.any(np.asarray(loss_trace) > 0):  # a closed-form attack's zeros stay linear
    ax1.set_yscale('log')
  ax1.set_xlabel('iteration')
  ax1.set_ylabel('gradient-matching loss')
  its = np.array([it for it, _ in mse_trace])
  values = np.stack([m for _, m in mse_trace], axis=1)
  for v in range(values.shape[0]):
    ax2.plot(its, values[v], lw=0.8)
  ax2.set_yscale('log')
  ax2.set_xlabel('iteration')
  ax2.set_ylabel('MSE to the private image')
  fig.tight_layout()
  files.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format='png'))
  plt.close(fig)


def table(summary: Mapping[str, Any], records: list[dict[str, Any]]) -> str:
  """A plain-text table of victims and the summary line.

  The summary line says over how many victims the image means are taken; a
  failed victim's scores print as '—'.

  >>> print(table({'mean_mse': 0.01, 'mean_psnr': 20.0, 'mean_ssim': 0.5, 'label_accuracy': 0.5,
  ...              'num_victims': 2, 'num_scored': 1, 'num_diverged': 1, 'seconds': 3.0},
  ...             [{'victim': 1, 'images': 'cat', 'mse': float('nan'), 'psnr': None,
  ...               'ssim': None, 'label_correct': 0.0, 'iterations': 5, 'diverged': True}])
  ...       )  # doctest: +NORMALIZE_WHITESPACE
  victim image                           MSE    PSNR   SSIM label  iters diverged exact
       1 cat                               —       —      —  0.00      5     True     —
  mean MSE 1.000e-02 | mean PSNR 20.00 dB | mean SSIM 0.500 (over 1/2 scored) | label acc 0.500 |
  diverged 1/2 | 3.0 s
  """
  def _num(value: Any, spec: str) -> str:  # a failure's NaN (None from JSON) prints as '—'
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return '—' if missing else format(value, spec)

  lines = [f'{"victim":>6} {"image":<24} {"MSE":>10} {"PSNR":>7} {"SSIM":>6} '
           f'{"label":>5} {"iters":>6} {"diverged":>8} {"exact":>5}']
  for r in records:
    name = r['images'] if isinstance(r['images'], str) else ','.join(r['images'])
    lines.append(f'{r["victim"]:>6} {name[:24]:<24} {_num(r["mse"], ".2e"):>10} '
                 f'{_num(r["psnr"], ".2f"):>7} {_num(r["ssim"], ".3f"):>6} '
                 f'{r["label_correct"]:>5.2f} {r["iterations"]:>6} {str(r["diverged"]):>8} '
                 f'{_num(r.get("exact_recovered"), "d"):>5}')
  # metrics.json files written before `num_scored` existed averaged over all.
  num_scored = summary.get('num_scored', summary['num_victims'])
  lines.append(f'mean MSE {_num(summary["mean_mse"], ".3e")} | '
               f'mean PSNR {_num(summary["mean_psnr"], ".2f")} dB | '
               f'mean SSIM {_num(summary["mean_ssim"], ".3f")} '
               f'(over {num_scored}/{summary["num_victims"]} scored) | '
               f'label acc {summary["label_accuracy"]:.3f} | '
               f'diverged {summary["num_diverged"]}/{summary["num_victims"]} | '
               f'{summary["seconds"]:.1f} s')
  if 'exact_recall' in summary:  # metrics.json files from before lack it
    lines.append(f'exactly recovered (max abs error < {metrics.EXACT_TOLERANCE:g}): '
                 f'{summary["mean_exact_recovered"]:.2f} images per victim | '
                 f'recall {summary["exact_recall"]:.3f}')
  return '\n'.join(lines)


def record(result: AttackResult, truth: Private, scores: Scores, summary: Mapping[str, Any],
           names: tuple, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The metrics record (what metrics.json holds): summary, one record per victim, extra."""
  return {'summary': dict(summary), 'victims': victim_records(scores, names, result, truth),
          **(extra or {})}


def curves(scores: Scores) -> dict[str, list[Any]]:
  """MSE to the private images per recorded iteration: curves.json's content.

  >>> curves(Scores(*[None] * 7, mse_trace=((0, np.array([1.0, 3.0])), (10, np.array([0.5, 0.5])))))
  {'iterations': [0, 10], 'mean_mse': [2.0, 0.5], 'mse': [[1.0, 3.0], [0.5, 0.5]]}
  """
  return {'iterations': [int(it) for it, _ in scores.mse_trace],
          'mean_mse': [float(np.mean(m)) for _, m in scores.mse_trace],
          'mse': [np.asarray(m, np.float64).tolist() for _, m in scores.mse_trace]}


def write(workdir: str, config: Mapping[str, Any], result: AttackResult, truth: Private,
          scores: Scores, summary: Mapping[str, Any], names: tuple,
          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Writes the run's files into `workdir` and returns the metrics record."""
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, 'config.json'), config)
  metrics = record(result, truth, scores, summary, names, extra)
  write_json(os.path.join(workdir, 'metrics.json'), metrics)
  write_json(os.path.join(workdir, 'curves.json'), curves(scores))
  save_reconstructions(os.path.join(workdir, 'reconstructions.npz'), result, truth)
  save_grid(os.path.join(workdir, 'grid.png'), np.asarray(truth.images),
            np.asarray(result.images), scores.psnr)
  save_curves(os.path.join(workdir, 'curves.png'), result.loss_trace, scores.mse_trace)
  return metrics
