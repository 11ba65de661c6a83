"""files.atomic_write: the old file stays whole when a write fails, and no temporary is left."""

import os
import tempfile

from absl.testing import absltest

from dlg_jax import files


class AtomicWriteTest(absltest.TestCase):

  def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(self):
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, 'metrics.json')
    files.atomic_write(path, lambda tmp: open(tmp, 'w').close())

    def half(tmp):
      with open(tmp, 'w') as f:
        f.write('{"half":')
      raise KeyboardInterrupt  # a run killed mid-write

    with self.assertRaises(KeyboardInterrupt):
      files.atomic_write(path, half)
    self.assertEqual(os.listdir(folder), ['metrics.json'])
    self.assertEqual(os.path.getsize(path), 0)

  def test_concurrent_writers_use_distinct_temporaries(self):
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, 'entry')
    seen = []

    def outer(tmp):
      seen.append(tmp)
      files.atomic_write(path, inner)  # a second writer while the first is mid-write
      with open(tmp, 'w') as f:
        f.write('first')

    def inner(tmp):
      seen.append(tmp)
      with open(tmp, 'w') as f:
        f.write('second')

    files.atomic_write(path, outer)
    self.assertLen(set(seen), 2)
    with open(path) as f:
      self.assertEqual(f.read(), 'first')  # the last rename wins, whole
    self.assertEqual(os.listdir(folder), ['entry'])


if __name__ == '__main__':
  absltest.main()
