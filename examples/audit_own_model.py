"""Audit a Flax model of your own, defined here and not in dlg_jax's zoo.

  python3 -m examples.audit_own_model                 # 4 photos, IG and DLG (from the repo root)
  python3 -m examples.audit_own_model --steps=30 --victims=2 --workdir=runs/mine

A small sigmoid CNN with a dropout site, random weights, FedSGD clients of one
image each. Inverting Gradients and DLG attack the same updates; each prints
its per-victim PSNR and the summary metrics.json would hold, and with
--workdir the usual report (report.html, grid.png, ...) is written per attack.
"""

from __future__ import annotations

import argparse
import os

import flax.linen as nn
import jax
import numpy as np

import dlg_jax
from dlg_jax import data
from dlg_jax.models import layers


class TinyNet(nn.Module):
  """Two sigmoid convolutions, a dense layer, a dropout site, logits."""
  num_classes: int = 16
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no BatchNorm: the mode changes nothing
    x = nn.sigmoid(nn.Conv(8, (5, 5), strides=(2, 2))(x))
    x = nn.sigmoid(nn.Conv(8, (5, 5))(x))
    x = nn.sigmoid(nn.Dense(64)(x.reshape(x.shape[0], -1)))
    if self.dropout_rate > 0:
      x = layers.MaskedDropout(self.dropout_rate)(x)
    return nn.Dense(self.num_classes)(x)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=300, help='iterations of each attack')
  parser.add_argument('--victims', type=int, default=4, help='photos, one per client')
  parser.add_argument('--workdir', default='', help='write each attack\'s report here')
  args = parser.parse_args()

  photos = data.load_photos(args.victims, size=16, channels=3)
  model = TinyNet(num_classes=photos.num_classes)
  variables = model.init(jax.random.key(0), np.zeros((1, 16, 16, 3), np.float32))
  attacks = {
      'ig': {'name': 'ig', 'steps': args.steps, 'chunk': min(args.steps, 100), 'lr': 0.1},
      'dlg': {'name': 'dlg', 'steps': args.steps, 'chunk': min(args.steps, 100)},
  }
  for name, attack in attacks.items():
    found = dlg_jax.audit(model, variables, photos.images, photos.labels, attack=attack,
                          client={'batch_size': 1}, names=photos.names)
    summary = found.record['summary']
    print(f'{name}: mean PSNR {summary["mean_psnr"]:.2f} dB, SSIM {summary["mean_ssim"]:.3f}, '
          f'labels {summary["label_accuracy"]:.2f}, {summary["seconds"]:.1f} s')
    for victim in found.record['victims']:
      print(f'  {victim["images"]:<16} PSNR {victim["psnr"]:6.2f} dB')
    if args.workdir:
      dlg_jax.write_report(found, os.path.join(args.workdir, name))


if __name__ == '__main__':
  main()
