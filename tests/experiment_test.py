"""Tests for dlg_jax.experiment: every check before any data, the configs' variants, smoke runs."""

import json
import os
import tempfile

from absl.testing import absltest

from configs import dlg as dlg_config
from configs import fedavg as fedavg_config
from configs import idlg as idlg_config
from configs import ig as ig_config
from dlg_jax import experiment
from dlg_jax import html_report
from dlg_jax import runner
from dlg_jax.attacks import inverting



class BadConfigTest(absltest.TestCase):

  def _run(self, **overrides):
    config = idlg_config.get_config('smoke')
    for path, value in overrides.items():
      section, field = path.split('.')
      config[section][field] = value
    with tempfile.TemporaryDirectory() as tmp:
      runner.run(config, tmp)

  def test_each_bad_value_gives_one_clear_error(self):
    cases = (
        ({'model.name': 'lenet7'}, r"unknown model 'lenet7'; choose one of \[.*'lenet'"),
        ({'attack.name': 'dlgg'}, r"unknown attack 'dlgg'; choose one of \[.*'dlg', 'idlg'"),
        ({'data.name': 'imagenet3'}, r"unknown data set 'imagenet3'; choose one of"),
        ({'data.num_victims': 0}, r'data.num_victims must be a positive integer'),
        ({'client.batch_size': -1}, r'client.batch_size must be a positive integer'),
        ({'data.name': 'npz', 'data.path': '/no/such.npz'}, r'is not a file'),
    )
    for overrides, pattern in cases:
      with self.subTest(**{k.replace('.', '_'): v for k, v in overrides.items()}):
        with self.assertRaisesRegex((ValueError, FileNotFoundError), pattern):
          self._run(**overrides)

  def test_model_option_errors(self):
    config = idlg_config.get_config('smoke')
    config.model.dropout_rate = 1.5
    with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(ValueError, r'\[0, 1\)'):
      runner.run(config, tmp)
    config = idlg_config.get_config('smoke')
    config.model.depth = 3
    with tempfile.TemporaryDirectory() as tmp, self.assertRaisesRegex(ValueError, 'no option'):
      runner.run(config, tmp)

  def test_config_argument(self):
    self.assertEqual(dlg_config.get_config().attack.labels, 'optimize')
    with self.assertRaisesRegex(ValueError, 'smoke'):
      dlg_config.get_config('huge')


class InProcessSmokeTest(absltest.TestCase):

  def test_ig_smoke(self):
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(ig_config.get_config('smoke'), tmp)
      self.assertEqual(record['summary']['num_victims'], 2)
      self.assertEqual(record['summary']['label_accuracy'], 1.0)
      with open(os.path.join(tmp, 'config.json')) as f:
        config = json.load(f)
      self.assertEqual((config['attack']['name'], config['attack']['labels'],
                        config['client']['train']), ('ig', 'idlg', False))


  def test_ig_lenet_variant_is_a_valid_ig_config(self):
    # The tuned LeNet run (plateau schedule, layer weights) must pass the
    # attack's own validation, and stay on the model the docstring measures.
    config = ig_config.get_config('lenet')
    inverting.check_config(config.attack)
    self.assertEqual((config.model.name, config.data.num_victims, config.attack.schedule),
                     ('lenet', 16, 'plateau'))

  def test_model_options_reach_the_threat_model_sentence(self):
    config = ig_config.get_config()
    self.assertEqual(config.model.options, '')
    config.model.options = 'width=16'
    experiment.check(config)
    self.assertIn('<b>resnet18</b> (width=16)', html_report.threat_model(config.to_dict())[0])
    config.model.options = 'widht=16'
    with self.assertRaisesRegex(ValueError, r"has no option\(s\) \['widht'\]"):
      experiment.check(config)

  def test_ig_defaults_to_running_statistics_on_both_sides(self):
    # A client in eval mode attacked by a train-mode attacker (or the reverse)
    # would be a third threat model; the default (Geiping et al.'s) and
    # ':train' must each switch both sides, on ResNet-18.
    # Eval mode also feeds the model CIFAR-10-normalised images, as their
    # code does; ':train' keeps the measured [0, 1] inputs.
    for arg, mode, normalize in ((None, False, 'cifar10'), ('eval', False, 'cifar10'),
                                 ('train', True, '')):
      config = ig_config.get_config(arg)
      inverting.check_config(config.attack)
      self.assertEqual((config.model.name, config.client.train, config.attack.train,
                        config.data.normalize), ('resnet18', mode, mode, normalize), arg)
    with self.assertRaisesRegex(ValueError, '":lenet", ":train"'):
      ig_config.get_config('evals')



  def test_fedavg_smoke(self):
    config = fedavg_config.get_config('smoke')
    self.assertEqual((config.client.protocol, config.client.local_steps), ('fedavg', 4))
    with tempfile.TemporaryDirectory() as tmp:
      record = runner.run(config, tmp)
      self.assertEqual(record['summary']['label_accuracy'], 1.0)
      with open(os.path.join(tmp, 'config.json')) as f:
        saved = json.load(f)
      self.assertEqual(saved['client']['protocol'], 'fedavg')
      self.assertEqual(saved['model_init']['source'], 'random')


if __name__ == '__main__':
  absltest.main()
