"""`report.html`: one self-contained page per run, for people rather than scripts.

It states the threat model in words (derived from the config, so it cannot
drift from what ran), the summary table, the grid and curves (PNG embedded as
base64, so the page opens offline and can be mailed), the per-victim table and
the config. metrics.json stays the machine-readable record; this page only
reads what `report.write` already put in the workdir.

Every piece of markup is built by `fill` from a template of ours, and every
value it inserts (config strings, data and file names, victim names, numbers
formatted as text) is escaped, so nothing a user writes can open a tag.
"""

from __future__ import annotations

import base64
import html
import json
import os
from typing import Any, Iterable, Mapping

from dlg_jax import metrics
from dlg_jax import report
from dlg_jax import server as server_lib

_MAX_VICTIM_ROWS = 200  # the rest is in metrics.json

_LABEL_MODES = {
    'optimize': 'optimises dummy labels jointly with the images (DLG)',
    'idlg': "reads each label off the output layer's gradient (iDLG rule)",
    'known': 'is given the true labels (the client reveals them)',
    'none': 'does not recover labels (label accuracy is no claim)',
}

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}img{max-width:100%}
pre{background:#f6f6f6;padding:1em;font-size:12px;overflow:auto}"""


class Html(str):
  """Markup that is already safe (made by `fill` or `join`): inserted as it is."""


def fill(template: str, *values: Any) -> Html:
  """`template` (a literal of ours) with each `{}` replaced by an escaped value.

  A value that is already `Html` goes in as it is; any other is turned into
  text and escaped, quotes included, so it is safe in an element and in an
  attribute alike. Templates hold only `{}`: numbers are formatted first.

  >>> fill('<td class="{}">{}</td>', 'l', '"><script>alert(1)</script>')
  '<td class="l">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</td>'
  >>> fill('<p>{}</p>', fill('<b>{}</b>', 'x & y'))
  '<p><b>x &amp; y</b></p>'
  """
  return Html(template.format(*(v if isinstance(v, Html) else html.escape(str(v), quote=True)
                                for v in values)))


def join(parts: Iterable[Any], sep: str = '') -> Html:
  """`parts` (each escaped unless `Html`) joined by `sep` (escaped too)."""
  return Html(html.escape(sep).join(fill('{}', p) for p in parts))


def threat_model(config: Mapping[str, Any]) -> list[Html]:
  """Sentences (markup) saying who sees what in this run."""
  data, client, attack = config['data'], config['client'], config['attack']
  model = config['model']
  defenses = list(client.get('defenses', []))
  if client.get('protocol', 'fedsgd') == 'fedavg':
    what = fill('the model update of {} local SGD steps at learning rate {} (FedAvg)',
                client.get('local_steps'), client.get('local_lr'))
  else:
    what = fill('the gradient of its batch (FedSGD)')
  if defenses:
    what = fill('{} after the defenses {}', what,
                join((json.dumps(d, sort_keys=True, default=repr) for d in defenses), ', '))
  weights = dict(config.get('model_init', {}))
  source = weights.get('source', 'random')
  origin = {'random': 'randomly initialised', 'checkpoint': 'loaded from a checkpoint',
            'train': f'trained for {weights.get("steps")} steps first'}.get(source, source)
  users = (fill(', summed over {} users each with its own batch (secure aggregation)',
                client['users']) if client.get('users', 1) > 1 else '')
  reveal = []
  if client.get('reveal_labels'):
    reveal.append('its labels')
  if client.get('reveal_masks'):
    reveal.append('its dropout masks')
  options = fill(' ({})', model.get('options')) if model.get('options') else ''
  normalize = (fill(', normalised inside the model by {} statistics', data.get('normalize'))
               if data.get('normalize') else '')
  labels = _LABEL_MODES.get(str(attack.get('labels')), f'uses labels={attack.get("labels")!r}')
  return [
      fill('Each of the {} victims trains the shared model <b>{}</b>{} on a private batch of '
           '{} image(s) from <b>{}</b> ({}×{}×{}, pixels in [0, 1]{}) and sends {}.',
           data['num_victims'], model.get('name'), options, client['batch_size'], data['name'],
           data['size'], data['size'], data['channels'], normalize, what),
      fill('The server (attacker) {}; it knows the model architecture and its weights ({}) and '
           'receives that update{}{}; it never sees the private images.',
           server_lib.describe(dict(config.get('server') or {})), origin,
           ' and ' + ' and '.join(reveal) if reveal else '', users),
      fill('Attack <b>{}</b>: it {}, {} iterations, {} restart(s) per victim; the restart with '
           'the lowest matching loss is kept (the attacker can see that loss, never the truth).',
           attack['name'], labels, attack.get('steps'), attack.get('restarts', 1))
      if 'steps' in attack else
      fill('Attack <b>{}</b>: it {}; a closed form, read straight off the update with no '
           'optimisation.', attack['name'], labels),
      fill('Scores compare each reconstruction with its private image in [0, 1] pixels (MSE, '
           'PSNR, SSIM) and the recovered labels with the true ones; a reconstruction with '
           'NaN/Inf pixels is a failure: no scores, counted as diverged, left out of the means.'),
  ]


def png(path: str) -> Html:
  """The PNG at `path` as an embedded <img>, or a line saying it is missing."""
  name = os.path.basename(path)
  if not os.path.exists(path):
    return fill('<p>(missing: {})</p>', name)
  with open(path, 'rb') as f:
    data = base64.b64encode(f.read()).decode('ascii')
  return fill('<img alt="{}" src="data:image/png;base64,{}">', name, data)


def table(header: list[str], rows: Iterable[Iterable[Any]], left: int = 0) -> Html:
  """A <table>: one header row, then `rows`; the first `left` columns align left."""
  cls = lambda i: 'l' if i < left else ''
  th = join(fill('<th class="{}">{}</th>', cls(i), h) for i, h in enumerate(header))
  body = join(fill('<tr>{}</tr>', join(fill('<td class="{}">{}</td>', cls(i), v)
                                        for i, v in enumerate(row))) for row in rows)
  return fill('<table><tr>{}</tr>{}</table>', th, body)


def _fmt(value: Any, spec: str) -> str:
  """`value` by `spec`; 'n/a' where there is none (None, or NaN: a failed score)."""
  if value is None or (isinstance(value, float) and value != value):
    return 'n/a'
  return format(value, spec)


def render(config: Mapping[str, Any], record: Mapping[str, Any], workdir: str) -> str:
  """The page as a string; images are read from `workdir`."""
  s = record['summary']
  # metrics.json files written before `num_scored` existed averaged over all.
  scored = f'{s.get("num_scored", s["num_victims"])}/{s["num_victims"]}'
  summary = table(
      ['victims', 'scored', 'mean MSE', 'mean PSNR (dB)', 'mean SSIM', 'label accuracy',
       'diverged', 'seconds'],
      [[s['num_victims'], scored, _fmt(s['mean_mse'], '.3e'), _fmt(s['mean_psnr'], '.2f'),
        _fmt(s['mean_ssim'], '.3f'), _fmt(s['label_accuracy'], '.3f'), s['num_diverged'],
        _fmt(s['seconds'], '.1f')]])
  if 'exact_recall' in s:  # metrics.json files from before lack it
    summary = join([summary, fill('<p>Exactly recovered (largest pixel error below {}): {} '
                                  'images per victim on average, recall {}.</p>',
                                  format(metrics.EXACT_TOLERANCE, 'g'),
                                  _fmt(s['mean_exact_recovered'], '.2f'),
                                  _fmt(s['exact_recall'], '.3f'))])
  victims = record['victims']
  rows = [[v['victim'], v['images'] if isinstance(v['images'], str) else ','.join(v['images']),
           _fmt(v['mse'], '.2e'), _fmt(v['psnr'], '.2f'), _fmt(v['ssim'], '.3f'),
           _fmt(v['label_correct'], '.2f'), v['iterations'], v['diverged'],
           _fmt(v.get('exact_recovered'), 'd')]
          for v in victims[:_MAX_VICTIM_ROWS]]
  more = (fill('<p>First {} of {} victims; all are in metrics.json.</p>', _MAX_VICTIM_ROWS,
               len(victims)) if len(victims) > _MAX_VICTIM_ROWS else '')
  title = f'{config["attack"]["name"]} × {config["model"].get("name")} × {config["data"]["name"]}'
  return fill(
      '<!DOCTYPE html><html><head><meta charset="utf-8">\n'
      '<title>{}</title><style>{}</style></head><body>\n<h1>{}</h1>\n'
      '<h2>Threat model</h2>\n{}\n<h2>Summary</h2>\n{}\n'
      '<h2>Private images (top) and reconstructions (bottom)</h2>\n{}\n'
      '<h2>Matching loss and MSE per iteration</h2>\n{}\n<h2>Victims</h2>\n{}\n{}\n'
      '<h2>Config</h2>\n<pre>{}</pre>\n</body></html>\n',
      title, Html(_CSS), title, join(fill('<p>{}</p>', line) for line in threat_model(config)),
      summary, png(os.path.join(workdir, 'grid.png')), png(os.path.join(workdir, 'curves.png')),
      table(['victim', 'image', 'MSE', 'PSNR', 'SSIM', 'label', 'iterations', 'diverged',
             'exact'], rows,
            left=2), more, json.dumps(config, indent=2, default=repr))


def write(workdir: str, config: Mapping[str, Any], record: Mapping[str, Any]) -> str:
  """Writes `workdir/report.html` atomically; returns its path."""
  path = os.path.join(workdir, 'report.html')
  report.write_text(path, render(config, record, workdir))
  return path
