"""Tests for dlg_jax.server: the honest default changes nothing; a malicious one is checked."""

from absl.testing import absltest
import numpy as np

from configs import idlg as idlg_config
from dlg_jax import chunks
from dlg_jax import experiment
from dlg_jax import html_report
from dlg_jax import server
from dlg_jax.errors import ConfigError


def _idlg(**server_fields):
  config = idlg_config.get_config('smoke').to_dict()
  config['data']['num_victims'] = 1
  config['attack']['restarts'] = 1
  if server_fields:
    config['server'] = server_fields
  else:  # a config written before the server section (and client.users) existed
    del config['server']
    del config['client']['users']
  return config


class HonestServerTest(absltest.TestCase):

  def test_honest_default_leaves_an_earlier_result_unchanged(self):
    before = experiment.attack_victims(experiment.setup(_idlg()))
    honest = experiment.attack_victims(experiment.setup(_idlg(name='honest')))
    np.testing.assert_array_equal(honest.result.images, before.result.images)
    np.testing.assert_array_equal(honest.scores.mse, before.scores.mse)

  def test_honest_default_keeps_the_fingerprint(self):
    before, honest = _idlg(), _idlg(name='honest')
    honest['client']['users'] = 1
    self.assertEqual(chunks.fingerprint(experiment.check(honest)), chunks.fingerprint(before))

  def test_the_report_names_the_server(self):
    lines = ' '.join(html_report.threat_model(experiment.check(_idlg())))
    self.assertIn('sends the model unchanged (honest)', lines)


class CheckTest(absltest.TestCase):

  def test_each_bad_server_field_gives_one_clear_error(self):
    cases = (
        ({'name': 'evil'}, {},
         r"server.name must be one of \('honest', 'imprint', 'trap_weights', 'qbi'\)"),
        ({'name': 'imprint', 'bins': 0}, {}, r'server.bins must be a positive integer'),
        ({'name': 'imprint', 'public': 'split'}, {}, r'server.public="split" needs an IDX'),
        ({'name': 'imprint', 'public': 'split'}, {'name': 'idx', 'split': 'train'},
         r"server.public_split='train' is the victims' split"),
        ({'name': 'imprint', 'target': 0.5}, {}, r'server.target=0.5 .* server.bins=2'),
        ({'name': 'trap_weights', 'trap_rate': 2}, {}, r'server.trap_rate must be a fraction'),
        ({'bin': 3}, {}, r"server has no field\(s\) \['bin'\]"),
    )
    for fields, data, pattern in cases:
      with self.subTest(fields=fields):
        data = {'name': 'photos', 'size': 32, 'channels': 3, 'split': 'test', **data}
        with self.assertRaisesRegex(ConfigError, pattern):
          server.check(fields, data)

  def test_attack_and_users_need_a_matching_server(self):
    config = _idlg(name='honest')
    config['attack'] = {'name': 'imprint'}
    with self.assertRaisesRegex(ConfigError, r'set server.name=.imprint.'):
      experiment.check(config)
    config = _idlg(name='honest')
    config['client']['users'] = 4
    with self.assertRaisesRegex(ConfigError, r"client.users=4: .* attack.name='idlg'"):
      experiment.check(config)


if __name__ == '__main__':
  absltest.main()
