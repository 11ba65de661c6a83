"""Batches, FedAvg and the threat-model switches of issue 3.

Batch label recovery, matched scoring, the FedAvg observation shared by the
client and the attacks, checkpoints and trained weights, BatchNorm mode, and
the :smoke variant of configs/fedavg.py (the batch sweep's: sweeps_batch_test.py).
"""

import functools
import json
import os
import tempfile

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from configs import fedavg as fedavg_config
from dlg_jax import data
from dlg_jax import experiment
from dlg_jax import metrics
from dlg_jax import models
from dlg_jax import runner
from dlg_jax import weights
from dlg_jax.attacks import labels
from dlg_jax.attacks import losses
from dlg_jax.client import gradients
from dlg_jax.client import protocol
from dlg_jax.client import simulate
from dlg_jax.types import AttackResult, Private, Protocol

SIZE, CLASSES = 16, 16


def _photos(count):
  photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, count)
  return jnp.asarray(photos.images), jnp.asarray(photos.labels)


class BatchLabelTest(absltest.TestCase):

  def test_exact_for_distinct_labels_up_to_eight(self):
    images, true = _photos(16)
    rng = np.random.default_rng(0)
    for name in ('lenet', 'lenet5'):  # sigmoid features; ReLU features
      model = models.build({'name': name}, (SIZE, SIZE, 3), CLASSES)
      grad = jax.jit(lambda v, x, y, m=model: gradients.batch_gradients(
          m, v, x, jax.nn.one_hot(y, CLASSES)))
      for seed in range(3):
        variables = model.init(jax.random.key(seed))
        probs = labels.mean_probabilities(model, variables, jax.random.key(100 + seed))
        for batch in (2, 4, 8):
          idx = rng.choice(16, batch, replace=False)
          got = labels.batch_labels(grad(variables, images[idx], true[idx]), CLASSES, batch, probs)
          np.testing.assert_array_equal(np.sort(got), np.sort(true[idx]),
                                        err_msg=f'{name} seed {seed} B={batch}')

  def test_attack_reads_batch_labels_under_fedsgd_and_fedavg(self):
    images, true = _photos(8)
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    variables = model.init(jax.random.key(0))
    truth = Private(images.reshape(2, 4, SIZE, SIZE, 3), true.reshape(2, 4))
    for client in ({'train': True},
                   {'train': True, 'protocol': 'fedavg', 'local_steps': 3, 'local_lr': 0.1}):
      update, _, _ = simulate.client_update(model, variables, truth, jax.random.key(1), client)
      got = labels.recover_labels(update, 'idlg', model=model, variables=variables,
                                  key=jax.random.key(2))
      np.testing.assert_array_equal(np.sort(got, axis=1), np.sort(truth.labels, axis=1),
                                    err_msg=str(client))


def _result(images, labels_):
  v = images.shape[0]
  return AttackResult(images=images, labels=labels_, loss=jnp.zeros(v),
                      iterations=jnp.zeros(v, jnp.int32), evaluations=jnp.zeros(v, jnp.int32),
                      diverged=jnp.zeros(v, bool), loss_trace=np.zeros((v, 1)),
                      snapshots=((0, np.asarray(images)),))


class MatchedMetricsTest(absltest.TestCase):

  def test_swapped_batch_of_two_scores_the_same(self):
    images, true = _photos(4)
    truth = Private(images.reshape(2, 2, SIZE, SIZE, 3), true.reshape(2, 2))
    noisy = jnp.clip(truth.images + 0.05 * jax.random.normal(jax.random.key(0),
                                                             truth.images.shape), 0, 1)
    ordered = metrics.score(_result(noisy, truth.labels), truth)
    swapped = metrics.score(_result(noisy[:, ::-1], truth.labels[:, ::-1]), truth)
    for field in ('mse', 'psnr', 'ssim', 'label_correct'):
      chex.assert_trees_all_close(getattr(swapped, field), getattr(ordered, field), rtol=1e-6)
    chex.assert_trees_all_close(swapped.mse_trace[0][1], ordered.mse_trace[0][1], rtol=1e-6)
    self.assertTrue(np.all(ordered.psnr < 30))  # the noise is real, not a trivial match
    matched = metrics.match(_result(noisy[:, ::-1], truth.labels[:, ::-1]), truth)
    np.testing.assert_array_equal(matched.images, noisy)

  def test_label_accuracy_is_a_multiset_overlap(self):
    np.testing.assert_allclose(metrics.label_accuracy(np.array([[3, 1, 1], [0, 2, 2]]),
                                                      np.array([[1, 2, 3], [2, 2, 0]])),
                               [2 / 3, 1.0])


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
    chex.assert_trees_all_close(one, grad, rtol=1e-6, atol=1e-8)

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


class WeightsTest(absltest.TestCase):

  def test_checkpoint_round_trip_and_errors(self):
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    # A BatchNorm collection beside the params: both must survive the trip.
    variables = {**model.init(jax.random.key(3)),
                 'batch_stats': {'bn': {'mean': jnp.arange(3.0), 'var': jnp.ones(3)}}}
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'ckpt', 'lenet.msgpack')
      weights.save(path, variables)
      chex.assert_trees_all_equal(weights.load(path, variables), variables)
      loaded = weights.initial({'source': 'checkpoint', 'path': path}, model,
                               jax.random.key(9), None)
      chex.assert_trees_all_equal(loaded['params'], variables['params'])
      other = models.build({'name': 'lenet'}, (8, 8, 3), 4)
      with self.assertRaisesRegex(ValueError, 'model_init.path'):
        weights.load(path, other.init(jax.random.key(0)))
    with self.assertRaisesRegex(FileNotFoundError, 'model_init.path'):
      weights.initial({'source': 'checkpoint', 'path': '/no/such.msgpack'}, model,
                      jax.random.key(0), None)
    with self.assertRaisesRegex(ValueError, 'model_init.source'):
      weights.check({'source': 'pretrained'})
    with self.assertRaisesRegex(ValueError, 'model_init.steps'):
      weights.check({'source': 'train', 'steps': 0})

  def test_random_source_is_the_plain_init(self):
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    chex.assert_trees_all_equal(weights.initial({}, model, jax.random.key(5), None),
                                model.init(jax.random.key(5)))

  def test_training_steps_lower_the_loss(self):
    photos = data.load({'name': 'photos', 'size': SIZE, 'channels': 3}, 16)
    model = models.build({'name': 'lenet'}, (SIZE, SIZE, 3), CLASSES)
    start = model.init(jax.random.key(0))
    trained = weights.initial({'source': 'train', 'steps': 30, 'lr': 1e-3, 'batch_size': 8},
                              model, jax.random.key(0), photos)
    loss = lambda v: float(gradients.cross_entropy(model.apply(v, jnp.asarray(photos.images)),
                                                   jax.nn.one_hot(photos.labels, CLASSES)))
    self.assertLess(loss(trained), loss(start) - 1.0)  # measured 5.47 -> 2.83 nats


class BatchNormModeTest(absltest.TestCase):

  def test_train_and_eval_mode_share_different_gradients(self):
    model = models.build({'name': 'resnet18'}, (8, 8, 3), 4)
    variables = jax.jit(model.init)(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    t = jax.nn.one_hot(jnp.array([0, 3]), 4)
    grad = jax.jit(functools.partial(gradients.batch_gradients, model),
                   static_argnames=('train',))
    train = grad(variables, x, t, train=True)
    evaluation = grad(variables, x, t, train=False)
    diff = sum(float(jnp.sum((a - b) ** 2)) for a, b in
               zip(jax.tree.leaves(train), jax.tree.leaves(evaluation)))
    norm = sum(float(jnp.sum(a ** 2)) for a in jax.tree.leaves(train))
    self.assertGreater(diff / norm, 1e-2)


class ConfigSmokeTest(absltest.TestCase):

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
