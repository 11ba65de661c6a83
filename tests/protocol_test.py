"""Tests for dlg_jax.client.protocol: FedSGD and FedAvg observations, shared by client and attacker."""


from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp

from dlg_jax import data
from dlg_jax import models
from dlg_jax.attacks import losses
from dlg_jax.client import gradients
from dlg_jax.client import protocol
from dlg_jax.types import Protocol

SIZE, CLASSES = 16, 16


def _photos(count):
  photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, count)
  return jnp.asarray(photos.images), jnp.asarray(photos.labels)


class ProtocolTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    cls.variables = cls.model.init(jax.random.key(0))
    images, true = _photos(2)
    cls.x, cls.t = images, jax.nn.one_hot(true, CLASSES)

  def test_one_local_step_is_the_gradient(self):
    grad = gradients.batch_gradients(self.model, self.variables, self.x, self.t)
    one = protocol.observe(self.model, self.variables, self.x, self.t,
                           protocol=Protocol('fedavg', 1, 0.3))
    # float32: the step runs in a loop, where XLA may sum in another order
    # (≈2e-8 apart on entries of ≈1e-2).
    chex.assert_trees_all_close(one, grad, rtol=1e-6, atol=1e-7)

  def test_k_steps_are_the_weight_change_over_k_lr(self):
    lr, k = 0.05, 3
    params, state = gradients.split_variables(self.variables)
    theta = params
    for _ in range(k):  # the client's K SGD steps, written out
      g = jax.grad(gradients.training_loss)(theta, self.model, state, self.x, self.t)
      theta = jax.tree.map(lambda p, gi: p - lr * gi, theta, g)
    shared = protocol.observe(self.model, self.variables, self.x, self.t,
                              protocol=Protocol('fedavg', k, lr))
    expected = jax.tree.map(lambda a, b: (a - b) / (k * lr), params, theta)
    # The expectation is a float32 difference of weights; observe sums gradients.
    chex.assert_trees_all_close(shared, expected, rtol=2e-3, atol=2e-4)

  def test_unrolled_attack_losses_are_zero_at_the_truth(self):
    fedavg = Protocol('fedavg', 4, 0.1)
    target = protocol.observe(self.model, self.variables, self.x, self.t, protocol=fedavg)
    aux = {'target': target, 'labels': jnp.argmax(self.t, axis=-1)}
    common = dict(model=self.model, variables=self.variables, train=True, protocol=fedavg)
    l2 = losses.matching_loss({'image': self.x}, aux, distance='l2', **common)
    cosine = losses.matching_loss({'image': self.x}, aux, distance='cosine', **common)
    self.assertLess(float(l2), 1e-10)
    self.assertLess(abs(float(cosine)), 1e-6)
    wrong = losses.matching_loss({'image': self.x * 0.5}, aux, distance='l2', **common)
    self.assertGreater(float(wrong), 1e-4)
    # The attacker who ignores the protocol (FedSGD) does not match the update.
    naive = losses.matching_loss({'image': self.x}, aux, distance='l2',
                                 **{**common, 'protocol': protocol.FEDSGD})
    self.assertGreater(float(naive), 1e-4)

  def test_bad_protocol_fields_are_clear_errors(self):
    for config, pattern in (({'protocol': 'fedprox'}, 'client.protocol'),
                            ({'protocol': 'fedavg', 'local_steps': 0}, 'client.local_steps'),
                            ({'protocol': 'fedavg', 'local_lr': 0.0}, 'client.local_lr')):
      with self.subTest(**config), self.assertRaisesRegex(ValueError, pattern):
        protocol.from_config(config)
    self.assertEqual(protocol.from_config({}), protocol.FEDSGD)


if __name__ == '__main__':
  absltest.main()
