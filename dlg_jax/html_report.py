"""`report.html`: one self-contained page per run, for people rather than scripts.

It states the threat model in words (derived from the config, so it cannot
drift from what ran), the summary table, the grid and curves (PNG embedded as
base64, so the page opens offline and can be mailed), the per-victim table and
the config. metrics.json stays the machine-readable record; this page only
reads what `report.write` already put in the workdir.
"""

from __future__ import annotations

import base64
import html
import json
import os
from typing import Any, Mapping

from dlg_jax import report

_MAX_VICTIM_ROWS = 200  # the rest is in metrics.json

_LABEL_MODES = {
    'optimize': 'optimises dummy labels jointly with the images (DLG)',
    'idlg': "reads each label off the output layer's gradient (iDLG rule)",
    'known': 'is given the true labels (the client reveals them)',
}

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}img{max-width:100%}
pre{background:#f6f6f6;padding:1em;font-size:12px;overflow:auto}"""


def threat_model(config: Mapping[str, Any]) -> list[str]:
  """Sentences saying who sees what in this run."""
  data, client, attack = config['data'], config['client'], config['attack']
  model = config['model']
  defenses = list(client.get('defenses', []))
  if client.get('protocol', 'fedsgd') == 'fedavg':
    what = (f'the model update of {client.get("local_steps")} local SGD steps at learning rate '
            f'{client.get("local_lr")} (FedAvg)')
  else:
    what = 'the gradient of its batch (FedSGD)'
  shared = (what if not defenses else what + ' after the defenses ' +
            ', '.join(html.escape(json.dumps(d, sort_keys=True)) for d in defenses))
  weights = dict(config.get('model_init', {}))
  source = weights.get('source', 'random')
  origin = {'random': 'randomly initialised', 'checkpoint': 'loaded from a checkpoint',
            'train': f'trained for {weights.get("steps")} steps first'}.get(source, source)
  reveal = []
  if client.get('reveal_labels'):
    reveal.append('its labels')
  if client.get('reveal_masks'):
    reveal.append('its dropout masks')
  lines = [
      f'Each of the {data["num_victims"]} victims trains the shared model '
      f'<b>{html.escape(str(model.get("name")))}</b>'
      + (f' ({html.escape(str(model.get("options")))})' if model.get('options') else '')
      + ' on a private batch of '
      f'{client["batch_size"]} image(s) from <b>{html.escape(str(data["name"]))}</b> '
      f'({data["size"]}×{data["size"]}×{data["channels"]}, pixels in [0, 1]'
      + (f', normalised inside the model by {html.escape(str(data.get("normalize")))} statistics'
         if data.get('normalize') else '') + ') and sends ' + shared + '.',
      f'The server (attacker) knows the model architecture and its weights ({origin}) and '
      'receives that update' + (' and ' + ' and '.join(reveal) if reveal else '') +
      '; it never sees the private images.',
      f'Attack <b>{html.escape(str(attack["name"]))}</b>: it '
      + _LABEL_MODES.get(str(attack.get('labels')), f'uses labels={attack.get("labels")!r}')
      + f', {attack.get("steps")} iterations, {attack.get("restarts", 1)} restart(s) per '
      'victim; the restart with the lowest matching loss is kept (the attacker can see that '
      'loss, never the truth).',
      'Scores compare each reconstruction with its private image in [0, 1] pixels (MSE, PSNR, '
      'SSIM) and the recovered labels with the true ones.',
  ]
  return lines


def _png(path: str) -> str:
  if not os.path.exists(path):
    return '<p>(missing: ' + html.escape(os.path.basename(path)) + ')</p>'
  with open(path, 'rb') as f:
    data = base64.b64encode(f.read()).decode('ascii')
  return f'<img alt="{html.escape(os.path.basename(path))}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]], left: int = 0) -> str:
  th = ''.join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>'
               for i, h in enumerate(header))
  body = []
  for row in rows:
    body.append('<tr>' + ''.join(f'<td class="{"l" if i < left else ""}">{html.escape(str(v))}</td>'
                                 for i, v in enumerate(row)) + '</tr>')
  return f'<table><tr>{th}</tr>{"".join(body)}</table>'


def _fmt(value: Any, spec: str) -> str:
  return 'n/a' if value is None else format(value, spec)


def render(config: Mapping[str, Any], record: Mapping[str, Any], workdir: str) -> str:
  """The page as a string; images are read from `workdir`."""
  s = record['summary']
  summary = _table(
      ['victims', 'mean MSE', 'mean PSNR (dB)', 'mean SSIM', 'label accuracy', 'diverged',
       'seconds'],
      [[s['num_victims'], _fmt(s['mean_mse'], '.3e'), _fmt(s['mean_psnr'], '.2f'),
        _fmt(s['mean_ssim'], '.3f'), _fmt(s['label_accuracy'], '.3f'), s['num_diverged'],
        _fmt(s['seconds'], '.1f')]])
  victims = record['victims']
  rows = [[v['victim'], v['images'] if isinstance(v['images'], str) else ','.join(v['images']),
           _fmt(v['mse'], '.2e'), _fmt(v['psnr'], '.2f'), _fmt(v['ssim'], '.3f'),
           _fmt(v['label_correct'], '.2f'), v['iterations'], v['diverged']]
          for v in victims[:_MAX_VICTIM_ROWS]]
  more = (f'<p>First {_MAX_VICTIM_ROWS} of {len(victims)} victims; all are in metrics.json.</p>'
          if len(victims) > _MAX_VICTIM_ROWS else '')
  title = f'{config["attack"]["name"]} × {config["model"].get("name")} × {config["data"]["name"]}'
  parts = [
      '<!DOCTYPE html><html><head><meta charset="utf-8">',
      f'<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>',
      f'<h1>{html.escape(title)}</h1>',
      '<h2>Threat model</h2>', ''.join(f'<p>{line}</p>' for line in threat_model(config)),
      '<h2>Summary</h2>', summary,
      '<h2>Private images (top) and reconstructions (bottom)</h2>',
      _png(os.path.join(workdir, 'grid.png')),
      '<h2>Matching loss and MSE per iteration</h2>', _png(os.path.join(workdir, 'curves.png')),
      '<h2>Victims</h2>',
      _table(['victim', 'image', 'MSE', 'PSNR', 'SSIM', 'label', 'iterations', 'diverged'],
             rows, left=2), more,
      '<h2>Config</h2>', f'<pre>{html.escape(json.dumps(config, indent=2, default=repr))}</pre>',
      '</body></html>\n',
  ]
  return '\n'.join(parts)


def write(workdir: str, config: Mapping[str, Any], record: Mapping[str, Any]) -> str:
  """Writes `workdir/report.html` atomically; returns its path."""
  path = os.path.join(workdir, 'report.html')
  report.write_text(path, render(config, record, workdir))
  return path
