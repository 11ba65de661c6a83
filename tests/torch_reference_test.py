"""The PyTorch reference of benchmarks/models_speed.py computes what dlg_jax computes.

Needs torch (`pip install -r requirements-bench.txt`); without it every test
here is skipped with that reason (CI installs requirements.txt only). The
library itself never imports torch.
"""

import os
import sys

import pytest

torch = pytest.importorskip(
    'torch', reason='torch is not installed: the PyTorch-reference gradient check needs '
    '`pip install -r requirements-bench.txt` (optional; the library does not use torch)')

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl.testing import absltest  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl.testing import parameterized  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from benchmarks import matching_problem  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import models_speed  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position

# ResNet-18 at width 8 (CIFAR stem): every layer type and shape rule of the
# benchmarked width-64 net (models_speed.SPECS), at a fraction of the time.
# DenseNet with two short blocks of growth 8: its dense layers (scanned in
# dlg_jax), transition and final norm, at ≈1/10 of DenseNet-121's check time.
# Inception-v3 has no small variant (its check, 139 px and up, takes minutes):
# models_speed.py checks it before timing it.
_MODELS = {
    'dlg_lenet': ({'name': 'lenet', 'act': 'sigmoid'}, 32, 100),
    'resnet18_cifar': ({'name': 'resnet18', 'stem': 'cifar', 'width': 8}, 32, 10),
    'densenet_small': ({'name': 'densenet121', 'act': 'sigmoid', 'growth_rate': 8,
                        'block_sizes': (2, 3), 'init_features': 16}, 32, 10),
}


class TorchReferenceTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    torch.set_num_threads(1)

  @parameterized.product(model=sorted(_MODELS), step=sorted(models_speed.STEPS))
  def test_input_gradient_of_the_matching_loss_equals_dlg_jax(self, model, step):
    config, size, classes = _MODELS[model]
    check = torch_reference.check_gradients(config, size, classes, float32=False,
                                            **models_speed.STEPS[step])
    self.assertTrue(check['ok'], {k: v for k, v in check.items() if not k.startswith('_')})
    self.assertLess(check['grad_rel_err'], 1e-4)
    self.assertGreater(check['grad_scale'], 0.0)

  def test_same_weights_give_the_same_logits(self):
    config, size, classes = _MODELS['resnet18_cifar']
    p = matching_problem.build(config, size, classes)
    module = torch_reference.from_flax(config, p.model.input_shape, classes, p.variables, False)
    want = np.asarray(p.model.apply(p.variables, p.truth))
    got = module(torch.from_numpy(p.truth).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

  def test_an_unmirrored_model_says_so(self):
    with self.assertRaises(torch_reference.NotMirrored):
      torch_reference.build({'name': 'densenet121', 'dropout_rate': 0.2}, (32, 32, 3), 10)


if __name__ == '__main__':
  absltest.main()
