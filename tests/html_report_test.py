"""Tests for dlg_jax.html_report: every value that reaches report.html is escaped."""

import os
import re
import tempfile

from absl.testing import absltest

from dlg_jax import html_report

SCRIPT = '<script>alert(1)</script>'
IMG = '"><img src=x onerror=alert(1)>'
# What the two payloads look like once escaped: visible on the page as text.
SCRIPT_SHOWN = '&lt;script&gt;alert(1)&lt;/script&gt;'
IMG_SHOWN = '&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'


def hostile_config():
  """A config whose every string (and some numbers' places) holds a payload."""
  return {
      'seed': 0,
      'data': {'name': SCRIPT, 'path': IMG, 'num_victims': IMG, 'size': 16, 'channels': 3,
               'normalize': SCRIPT},
      'model': {'name': IMG, 'options': SCRIPT},
      'model_init': {'source': SCRIPT, 'steps': IMG},
      'client': {'batch_size': SCRIPT, 'protocol': 'fedavg', 'local_steps': IMG,
                 'local_lr': SCRIPT, 'reveal_labels': True,
                 'defenses': [{'name': SCRIPT, 'sigma': IMG}, {'name': IMG}]},
      'attack': {'name': SCRIPT, 'labels': IMG, 'steps': SCRIPT, 'restarts': IMG},
  }


def hostile_record():
  summary = {'mean_mse': 0.01, 'mean_psnr': 20.0, 'mean_ssim': 0.5, 'label_accuracy': 1.0,
             'num_victims': 2, 'num_scored': 1, 'num_diverged': 1, 'seconds': 1.5}
  victims = [{'victim': 0, 'images': SCRIPT, 'mse': 0.01, 'psnr': 20.0, 'ssim': 0.5,
              'label_correct': 1.0, 'iterations': 3, 'diverged': False},
             {'victim': IMG, 'images': [IMG, SCRIPT], 'mse': None, 'psnr': float('nan'),
              'ssim': None, 'label_correct': 1.0, 'iterations': SCRIPT, 'diverged': True}]
  return {'summary': summary, 'victims': victims}


def assert_no_markup_from(test, page, allowed_imgs=0):
  """No payload opened a tag, and both payloads are still there as text."""
  test.assertNotIn('<script', page.lower())
  test.assertLen(re.findall(r'<img', page, re.IGNORECASE), allowed_imgs)
  test.assertNotIn('onerror=alert(1)>', page)
  test.assertIn(SCRIPT_SHOWN, page)
  test.assertIn(IMG_SHOWN, page)


class EscapeTest(absltest.TestCase):

  def test_fill_escapes_values_but_not_markup(self):
    inner = html_report.fill('<b>{}</b>', SCRIPT)
    self.assertEqual(html_report.fill('<p title="{}">{}</p>', IMG, inner),
                     f'<p title="{IMG_SHOWN}"><b>{SCRIPT_SHOWN}</b></p>')
    self.assertEqual(html_report.join([inner, '<i>'], ' & '),
                     f'<b>{SCRIPT_SHOWN}</b> &amp; &lt;i&gt;')

  def test_report_of_a_hostile_config_has_no_injected_markup(self):
    with tempfile.TemporaryDirectory() as workdir:
      path = html_report.write(workdir, hostile_config(), hostile_record())
      self.assertEqual(path, os.path.join(workdir, 'report.html'))
      with open(path, encoding='utf-8') as f:
        page = f.read()
    assert_no_markup_from(self, page)  # no grid.png/curves.png here: no <img> at all
    self.assertIn('(missing: grid.png)', page)
    # Our own markup survives, and the summary says how many victims it averages.
    self.assertIn('<h2>Threat model</h2>', page)
    self.assertIn('<td class="">1/2</td>', page)
    self.assertIn('<td class="">n/a</td>', page)  # the failed victim's NaN PSNR

  def test_embedded_png_is_the_only_img(self):
    with tempfile.TemporaryDirectory() as workdir:
      with open(os.path.join(workdir, 'grid.png'), 'wb') as f:
        f.write(b'\x89PNG')
      page = html_report.render(hostile_config(), hostile_record(), workdir)
    assert_no_markup_from(self, page, allowed_imgs=1)
    self.assertIn('<img alt="grid.png" src="data:image/png;base64,iVBORw==">', page)

  def test_threat_model_keeps_its_own_bold(self):
    config = hostile_config()
    config['model'] = {'name': 'lenet', 'options': 'width=16'}
    self.assertIn('<b>lenet</b> (width=16)', html_report.threat_model(config)[0])


if __name__ == '__main__':
  absltest.main()
