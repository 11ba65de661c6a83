"""Tests for dlg_jax.client.accounting."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import dp_accounting
from dp_accounting import pld
from dp_accounting import rdp

from dlg_jax.client import accounting


def _direct(z, q, steps, delta, accountant):
  """The same epsilon, written out against dp_accounting."""
  event = dp_accounting.SelfComposedDpEvent(
      dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)),
      steps)
  acc = rdp.RdpAccountant() if accountant == 'rdp' else pld.PLDAccountant()
  acc.compose(event)
  return acc.get_epsilon(delta)


class DpSgdEpsilonTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ('rdp_mnist', 'rdp', (1.1, 256 / 60000, 1000, 1e-5)),
      ('rdp_large_q', 'rdp', (0.7, 0.05, 50, 1e-6)),
      ('pld_mnist', 'pld', (1.1, 256 / 60000, 1000, 1e-5)),
  )
  def test_equals_direct_dp_accounting(self, accountant, setting):
    eps = accounting.dp_sgd_epsilon(*setting, accountant=accountant)
    self.assertIsInstance(eps, float)
    self.assertTrue(math.isfinite(eps))
    self.assertGreater(eps, 0)
    self.assertAlmostEqual(eps, _direct(*setting, accountant), places=9)

  def test_mnist_reference_setting(self):
    # Abadi et al.'s MNIST setting: z = 1.1, B = 256 of 60k, 10^4 steps.
    args = (1.1, 256 / 60000, 10_000, 1e-5)
    eps_rdp = accounting.dp_sgd_epsilon(*args, accountant='rdp')
    eps_pld = accounting.dp_sgd_epsilon(*args, accountant='pld')
    self.assertAlmostEqual(eps_rdp, 2.16, delta=0.01)
    self.assertAlmostEqual(eps_pld, 1.98, delta=0.01)
    self.assertLess(eps_pld, eps_rdp)  # PLD is the tighter accountant

  def test_decreases_in_noise_multiplier(self):
    eps = [accounting.dp_sgd_epsilon(z, 0.01, 500, 1e-5)
           for z in (0.6, 0.8, 1.1, 2.0, 4.0)]
    self.assertTrue(all(a > b for a, b in zip(eps, eps[1:])), eps)

  def test_increases_in_steps_and_sampling_rate(self):
    e = lambda q, t: accounting.dp_sgd_epsilon(1.0, q, t, 1e-5)
    self.assertLess(e(0.01, 100), e(0.01, 1000))
    self.assertLess(e(0.01, 100), e(0.05, 100))

  @parameterized.parameters('rdp', 'pld')
  def test_zero_noise_is_inf(self, accountant):
    self.assertEqual(
        accounting.dp_sgd_epsilon(0.0, 0.01, 10, 1e-5, accountant=accountant),
        math.inf)

  @parameterized.named_parameters(
      ('z_negative', dict(noise_multiplier=-1.0), 'noise_multiplier'),
      ('z_nan', dict(noise_multiplier=float('nan')), 'finite'),
      ('q_zero', dict(sampling_rate=0.0), 'sampling_rate'),
      ('q_above_one', dict(sampling_rate=1.5), 'sampling_rate'),
      ('steps_zero', dict(steps=0), 'steps'),
      ('steps_float', dict(steps=10.5), 'steps'),
      ('delta_zero', dict(delta=0.0), 'delta'),
      ('delta_one', dict(delta=1.0), 'delta'),
      ('accountant', dict(accountant='gdp'), 'choose from'),
  )
  def test_bad_inputs_raise(self, override, regex):
    kwargs = dict(noise_multiplier=1.0, sampling_rate=0.01, steps=10,
                  delta=1e-5)
    kwargs.update(override)
    with self.assertRaisesRegex(ValueError, regex):
      accounting.dp_sgd_epsilon(**kwargs)


class ExperimentPrivacyTest(parameterized.TestCase):

  DP = {'name': 'dp_sgd', 'clip_norm': 1.0, 'noise_multiplier': 1.3}

  def test_no_dp_sgd_no_record(self):
    self.assertEqual(accounting.experiment_privacy({'defenses': []}), {})
    self.assertEqual(accounting.experiment_privacy(
        {'defenses': [{'name': 'gaussian', 'variance': 1e-2}]}), {})

  def test_default_is_one_full_batch_gradient(self):
    record = accounting.experiment_privacy({'defenses': [self.DP]})
    self.assertAlmostEqual(record['epsilon'], _direct(1.3, 1.0, 1, 1e-5, 'rdp'), places=9)
    self.assertEqual((record['sampling_rate'], record['dp_steps'], record['delta']),
                     (1.0, 1, 1e-5))

  def test_configured_accounting_equals_dp_accounting(self):
    client = {'defenses': [{'name': 'quantize', 'fmt': 'bf16'}, self.DP],
              'accounting': {'sampling_rate': 64 / 1347, 'steps': 1000, 'delta': 1e-5,
                             'accountant': 'pld'}}
    record = accounting.experiment_privacy(client)
    self.assertAlmostEqual(record['epsilon'], _direct(1.3, 64 / 1347, 1000, 1e-5, 'pld'),
                           places=9)
    self.assertEqual(record['noise_multiplier'], 1.3)
    self.assertEqual(record['accountant'], 'pld')

  @parameterized.named_parameters(
      ('unknown_field', {'accounting': {'epochs': 3}}, 'unknown client.accounting'),
      ('two_stages', {'defenses': [DP, DP]}, 'more than one dp_sgd'),
      ('bad_delta', {'accounting': {'delta': 2.0}}, 'client.accounting.*delta'),
  )
  def test_bad_settings_raise(self, client, regex):
    client = {'defenses': [self.DP], **client}
    with self.assertRaisesRegex(ValueError, regex):
      accounting.experiment_privacy(client)


if __name__ == '__main__':
  absltest.main()
