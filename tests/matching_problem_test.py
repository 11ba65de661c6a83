"""The benchmarks' gradient-matching problem poses the attack the library runs."""

import doctest
import os
import sys

from absl.testing import absltest
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import matching_problem  # pylint: disable=g-import-not-at-top,wrong-import-position

_LENET = {'name': 'lenet', 'act': 'sigmoid'}


class MatchingProblemTest(absltest.TestCase):

  def test_doctests(self):
    self.assertEqual(doctest.testmod(matching_problem).failed, 0)

  def test_the_truth_matches_its_own_update_and_the_dummy_does_not(self):
    problem = matching_problem.build(_LENET, 32, 10)
    for distance in ('l2', 'cosine'):
      _, at_dummy, grad = matching_problem.jax_side(problem, distance=distance, tv=0.0,
                                                    train=True)
      _, at_truth, _ = matching_problem.jax_side(problem._replace(dummy=problem.truth),
                                                 distance=distance, tv=0.0, train=True)
      self.assertLess(abs(at_truth), 1e-6 * at_dummy, distance)
      self.assertEqual(grad.shape, problem.dummy.shape)
      self.assertGreater(np.max(np.abs(grad)), 0.0)

  def test_a_seed_fixes_the_problem(self):
    a, b = (matching_problem.build(_LENET, 32, 10, seed=3) for _ in range(2))
    np.testing.assert_array_equal(a.truth, b.truth)
    np.testing.assert_array_equal(a.label, b.label)
    self.assertFalse(np.array_equal(a.truth, a.dummy))

  def test_equal_settings_give_equal_losses_so_programs_are_reused(self):
    model = matching_problem.build(_LENET, 32, 10).model
    make = lambda: matching_problem.loss_function(model, distance='cosine', train=False, tv=1e-4)
    self.assertEqual(make(), make())
    self.assertEqual(hash(make()), hash(make()))


if __name__ == '__main__':
  absltest.main()
