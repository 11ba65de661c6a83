"""Time to result: configs/dlg.py and idlg.py beside the PyTorch DLG code, per image.

Issue 15's acceptance: the attack time per victim per core of `configs/dlg.py`
and `configs/idlg.py` on the 16 photos, against the time per image of the DLG
code (Zhu et al. 2019) on the same photos, model and weights, measured in the
same run, one core each, at the same moment:

* PyTorch (core 1, one thread): the DLG code's loop, image by image. The
  weights are the DLG LeNet's that `configs/dlg.py` draws (loaded into
  `torch_reference.DLGLeNet`); the client's update is ∇θ of the mean
  cross-entropy of the one-hot label; the dummy image and dummy label logits
  start N(0, 1) (`torch.manual_seed(image index)`), the label enters as
  softmax(logits), and `torch.optim.LBFGS` with its defaults (lr 1, max_iter
  20, history 100, no line search) takes 300 steps of the squared-L2
  gradient distance. That is the original code's call, written here from its
  definition; the image is scored like ours (PSNR on [0, 1] pixels, label =
  argmax of the logits).
* dlg_jax (core 0): `python launch.py --config=configs/<name>.py
  --config.run.cpu_cores=0`, as a user runs it, one config after the other;
  its `metrics.json` gives the attack seconds (client round, compile and
  attack) and the per-victim scores. Per victim per core = seconds ÷ victims.
  Each config runs `--runs` times (default 2): the first may compile, the
  second loads its programs from the persistent compilation cache.

Two ratios: seconds per image, and seconds per image recovered (≥ 30 dB):
the DLG code gives up early on the images whose dummy label locks onto a
wrong class (1–2 s each), so its time per image counts failures as cheap.

The two sides start together; each is pinned to its own core, so each sees
the other's memory traffic, as the issue's figure did. Ratio = dlg_jax's
seconds per victim ÷ PyTorch's mean seconds per image (target ≤ 0.1).

  pip install -r requirements-bench.txt     # torch (CPU)
  python benchmarks/dlg_time_to_result.py --out=dlg_ttr.md,dlg_ttr.json
  python benchmarks/dlg_time_to_result.py --configs=idlg --images=4 --torch_steps=50   # quick look

Extra `--set=field=value` pairs go to every dlg_jax run (e.g.
`--set=attack.steps=2000`). Results: docs/results/dlg_idlg.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

TORCH_CORE, JAX_CORE = 1, 0


# ---------------------------------------------------------------- the PyTorch side

def torch_dlg(module, image: np.ndarray, label: int, num_classes: int, *, steps: int,
              seed: int) -> dict[str, Any]:
  """The DLG code's attack on one image (NHWC [0, 1] in, NHWC reconstruction out)."""
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  def onehot_cross_entropy(pred, target):
    return torch.mean(torch.sum(-target * F.log_softmax(pred, dim=-1), 1))

  params = list(module.parameters())
  gt = torch.from_numpy(image[None]).permute(0, 3, 1, 2).contiguous()
  gt_onehot = F.one_hot(torch.tensor([label]), num_classes).float()
  target = [g.detach() for g in torch.autograd.grad(onehot_cross_entropy(module(gt), gt_onehot),
                                                    params)]
  torch.manual_seed(seed)
  dummy = torch.randn(gt.size()).requires_grad_(True)
  dummy_label = torch.randn(gt_onehot.size()).requires_grad_(True)
  opt = torch.optim.LBFGS([dummy, dummy_label])
  evaluations = 0

  def closure():
    nonlocal evaluations
    opt.zero_grad()
    loss = onehot_cross_entropy(module(dummy), F.softmax(dummy_label, dim=-1))
    grads = torch.autograd.grad(loss, params, create_graph=True)
    diff = sum(((gx - gy) ** 2).sum() for gx, gy in zip(grads, target))
    diff.backward()
    evaluations += 1
    return diff

  start = time.perf_counter()
  for _ in range(steps):
    loss = opt.step(closure)
  seconds = time.perf_counter() - start
  return {'seconds': seconds, 'evaluations': evaluations, 'loss': float(loss.detach()),
          'label': int(dummy_label.argmax()),
          'image': dummy.detach().permute(0, 2, 3, 1).numpy()[0]}


def torch_worker(job: dict[str, Any]) -> None:
  """Runs the DLG code on each image of job['npz']; writes job['out'] (npz)."""
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
  os.sched_setaffinity(0, {TORCH_CORE})
  torch.set_num_threads(1)
  data = np.load(job['npz'], allow_pickle=True)
  variables = data['variables'].item()
  images, labels = data['images'], data['labels']
  module = torch_reference.from_flax(job['model'], images.shape[1:], job['num_classes'],
                                     variables, train=True)
  rows = []
  for i, (image, label) in enumerate(zip(images, labels)):
    rows.append(torch_dlg(module, image, int(label), job['num_classes'], steps=job['steps'],
                          seed=i))
    print(f'torch image {i}: {rows[-1]["seconds"]:.1f} s, {rows[-1]["evaluations"]} evaluations, '
          f'loss {rows[-1]["loss"]:.3g}', flush=True)
  np.savez(job['out'], seconds=np.array([r['seconds'] for r in rows]),
           evaluations=np.array([r['evaluations'] for r in rows]),
           loss=np.array([r['loss'] for r in rows]), label=np.array([r['label'] for r in rows]),
           images=np.stack([r['image'] for r in rows]))


# ---------------------------------------------------------------- the driver

def problem(images: int) -> tuple[Any, dict[str, Any]]:
  """configs/dlg.py's experiment (photos, weights) and the DLG LeNet's config."""
  from configs import dlg  # pylint: disable=g-import-not-at-top
  from dlg_jax import experiment  # pylint: disable=g-import-not-at-top
  config = dlg.get_config()
  config.data.num_victims = images
  exp = experiment.setup(config)
  return exp, dict(config.model)


def spawn_torch(exp, model_config, tmp: str, steps: int) -> tuple[subprocess.Popen, str]:
  import jax  # pylint: disable=g-import-not-at-top
  npz, out = os.path.join(tmp, 'problem.npz'), os.path.join(tmp, 'torch.npz')
  variables = jax.tree.map(np.asarray, jax.device_get(exp.variables))
  np.savez(npz, images=exp.truth.images[:, 0], labels=exp.truth.labels[:, 0],
           variables=np.array(variables, dtype=object))
  job = {'npz': npz, 'out': out, 'model': model_config, 'steps': steps,
         'num_classes': exp.model.num_classes}
  env = dict(os.environ, OMP_NUM_THREADS='1')
  proc = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, os.path.abspath(__file__), '--worker', json.dumps(job)], cwd=ROOT,
      env=env, stdout=open(os.path.join(tmp, 'torch.log'), 'w'), stderr=subprocess.STDOUT)
  return proc, out


def run_jax(name: str, images: int, tmp: str, sets: list[str], tag: str) -> dict[str, Any]:
  """One config through launch.py on core 0; its metrics.json plus the wall time."""
  workdir = os.path.join(tmp, f'{name}_{tag}')
  cmd = [sys.executable, 'launch.py', f'--config=configs/{name}.py', f'--workdir={workdir}',
         f'--config.run.cpu_cores={JAX_CORE}', f'--config.data.num_victims={images}']
  cmd += [f'--config.{s}' for s in sets]
  start = time.perf_counter()
  with open(os.path.join(tmp, f'{name}_{tag}.log'), 'w') as log:
    rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
  wall = time.perf_counter() - start
  if rc:
    raise RuntimeError(f'{" ".join(cmd)} exited {rc}; see {log.name}')
  with open(os.path.join(workdir, 'metrics.json')) as f:
    metrics = json.load(f)
  return {'metrics': metrics, 'wall': wall, 'command': ' '.join(cmd[1:])}


def torch_scores(exp, out: str) -> dict[str, Any]:
  from dlg_jax import metrics  # pylint: disable=g-import-not-at-top
  got = np.load(out)
  truth = exp.truth.images[:, 0]
  rec = got['images'].astype(np.float32)
  finite = np.all(np.isfinite(rec.reshape(len(rec), -1)), axis=1)
  psnr = np.where(finite, np.asarray(metrics.psnr(np.nan_to_num(rec), truth)), np.nan)
  return {'seconds': got['seconds'], 'evaluations': got['evaluations'], 'psnr': psnr,
          'labels': got['label'] == exp.truth.labels[:, 0]}


def _victim_psnr(metrics: dict[str, Any]) -> np.ndarray:
  return np.array([np.nan if v['psnr'] is None else v['psnr'] for v in metrics['victims']],
                  dtype=float)


def _per_recovered(seconds: float, psnr: np.ndarray) -> float:
  ok = int(np.sum(np.nan_to_num(psnr, nan=-1) >= 30))
  return seconds / ok if ok else float('inf')


def report(exp, torch_res, jax_res: dict[str, dict[str, Any]], args) -> str:
  images = len(exp.names)
  t_total = float(np.sum(torch_res['seconds']))
  t_mean, t_rec = t_total / images, _per_recovered(t_total, torch_res['psnr'])
  ok = int(np.sum(np.nan_to_num(torch_res['psnr'], nan=-1) >= 30))
  lines = [f'# DLG time to result, {time.strftime("%Y-%m-%d %H:%M")}', '',
           f'{images} photos, DLG LeNet; PyTorch on core {TORCH_CORE} (1 thread), dlg_jax on '
           f'core {JAX_CORE}, started together. Ratios: dlg_jax ÷ PyTorch.', '',
           '| side | s per image per core | ratio | s per image ≥ 30 dB | ratio | ≥ 30 dB '
           '| mean PSNR (dB, finite) | labels | wall s |',
           '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
           f'| PyTorch DLG code ({args.torch_steps} LBFGS steps) | {t_mean:.2f} '
           f'(min {np.min(torch_res["seconds"]):.1f}, max {np.max(torch_res["seconds"]):.1f}) | 1 '
           f'| {t_rec:.2f} | 1 | {ok}/{images} | {np.nanmean(torch_res["psnr"]):.2f} '
           f'| {int(np.sum(torch_res["labels"]))}/{images} | {t_total:.0f} |']
  for key, res in jax_res.items():
    m = res['metrics']['summary']
    seconds = float(m['seconds'])
    psnr = _victim_psnr(res['metrics'])
    per, rec = seconds / images, _per_recovered(seconds, psnr)
    lines.append(f'| dlg_jax configs/{key} | {per:.2f} | **{per / t_mean:.3f}** | {rec:.2f} '
                 f'| **{rec / t_rec:.3f}** '
                 f'| {int(np.sum(np.nan_to_num(psnr, nan=-1) >= 30))}/{images} '
                 f'| {np.nanmean(psnr):.2f} | {m["label_accuracy"] * images:.0f}/{images} '
                 f'| {res["wall"]:.0f} |')
  lines += ['', 'PyTorch per image (s, evaluations, PSNR): ' + ', '.join(
      f'{s:.1f}/{e}/{p:.1f}' for s, e, p in zip(torch_res['seconds'], torch_res['evaluations'],
                                                torch_res['psnr'])), '']
  for key, res in jax_res.items():
    lines.append(f'dlg_jax {key}: `python {res["command"]}`')
  return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--worker', default='')
  parser.add_argument('--configs', default='dlg,idlg')
  parser.add_argument('--images', type=int, default=16)
  parser.add_argument('--torch_steps', type=int, default=300)
  parser.add_argument('--runs', type=int, default=2,
                      help='dlg_jax runs per config (the first may compile; the rest hit the cache)')
  parser.add_argument('--set', action='append', default=[],
                      help='field=value for every dlg_jax run, e.g. attack.steps=2000')
  parser.add_argument('--out', default='', help='comma-separated .md / .json paths')
  args = parser.parse_args(argv)
  if args.worker:
    torch_worker(json.loads(args.worker))
    return
  if len(os.sched_getaffinity(0)) < 2:
    raise SystemExit('needs two CPU cores (one per side)')
  exp, model_config = problem(args.images)
  with tempfile.TemporaryDirectory() as tmp:
    proc, out = spawn_torch(exp, model_config, tmp, args.torch_steps)
    # Run 1 may compile (a cold persistent cache); later runs of the same
    # config load the compiled programs, as a user's second run does.
    jax_res = {}
    for name in filter(None, args.configs.split(',')):
      for run in range(1, args.runs + 1):
        jax_res[f'{name}.py run {run}'] = run_jax(name, args.images, tmp, args.set, str(run))
    if proc.wait():
      with open(os.path.join(tmp, 'torch.log')) as f:
        raise RuntimeError('the PyTorch side failed:\n' + f.read()[-2000:])
    torch_res = torch_scores(exp, out)
  text = report(exp, torch_res, jax_res, args)
  print(text)
  for path in filter(None, args.out.split(',')):
    with open(path, 'w') as f:
      if path.endswith('.json'):
        json.dump({'torch': {k: np.asarray(v).tolist() for k, v in torch_res.items()},
                   'jax': jax_res, 'argv': sys.argv[1:]}, f, indent=1, default=float)
      else:
        f.write(text)


if __name__ == '__main__':
  main()
