"""Runs you can trust: what refused reruns, changed inputs, damaged chunks, kills and
bad workdirs do to a workdir, through launch.py as a user runs it.

Every case asserts the exit code, the one line a user reads, and the state
of the workdir afterwards. Tiny runs (16×16 grey photos, a few L-BFGS
iterations); the compiled programs come from the shared test cache.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest
import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ('--config.data.size=16', '--config.data.channels=1', '--config.attack.restarts=1',
        '--config.attack.memory=3', '--config.run.device_victims=1')


def _env():
  return dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu',
              JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or '',
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5')


def _args(workdir, *extra, config='configs/idlg.py:smoke', victims=2, steps=4, chunk=2):
  return [sys.executable, 'launch.py', f'--config={config}', f'--workdir={workdir}', *TINY,
          f'--config.data.num_victims={victims}', f'--config.attack.steps={steps}',
          f'--config.attack.chunk={chunk}', *extra]


def launch(workdir, *extra, **kw):
  return subprocess.run(_args(workdir, *extra, **kw), cwd=ROOT, env=_env(), capture_output=True,
                        text=True, timeout=600)


def snapshot(workdir):
  """Every file under `workdir` (relative name -> SHA-256), progress.jsonl aside."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, workdir)] = hashlib.sha256(f.read()).hexdigest()
  out.pop('progress.jsonl', None)
  return out


def arrays_digest(path):
  """SHA-256 of an npz's arrays (timing fields aside): equal results, whatever the zip's dates."""
  sha = hashlib.sha256()
  with np.load(path) as f:
    for key in sorted(set(f.files) - {'seconds'}):
      sha.update(key.encode() + np.ascontiguousarray(f[key]).tobytes())
  return sha.hexdigest()


def error_line(proc):
  lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
  return lines[-1] if lines else ''


def write_npz(path, seed):
  rng = np.random.default_rng(seed)
  np.savez(path, images=rng.integers(0, 256, (2, 16, 16), dtype=np.uint8),
           labels=np.array([0, 1]))


class ReliabilityTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp()
    cls.done = os.path.join(cls.tmp, 'done')  # a finished iDLG run, chunks of one victim
    proc = launch(cls.done, '--config.run.chunk_victims=1', victims=4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cls.files = snapshot(cls.done)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp)
    super().tearDownClass()

  def copy_of_done(self, name):
    workdir = os.path.join(self.tmp, name)
    shutil.copytree(self.done, workdir)
    return workdir

  def test_refused_rerun_changes_nothing(self):
    workdir = self.copy_of_done('refused')
    proc = launch(workdir, '--config.run.chunk_victims=1', config='configs/dlg.py:smoke', victims=4)
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertStartsWith(error_line(proc), 'error: ')
    self.assertIn("attack.name: 'idlg' → 'dlg'", error_line(proc))
    self.assertNotIn('Traceback', proc.stderr)
    self.assertEqual(snapshot(workdir), self.files)

  def test_changed_data_file_is_refused_naming_it(self):
    workdir = os.path.join(self.tmp, 'npz_run')
    data = os.path.join(self.tmp, 'faces.npz')
    write_npz(data, 0)
    npz = ('--config.data.name=npz', f'--config.data.path={data}',
           '--config.run.chunk_victims=1')
    self.assertEqual(launch(workdir, *npz).returncode, 0)
    before = snapshot(workdir)
    write_npz(data, 1)  # same name, other images
    proc = launch(workdir, *npz)
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertIn('contents of data.path', error_line(proc))
    self.assertEqual(snapshot(workdir), before)

  def test_damaged_chunks_are_named_and_redone(self):
    # One rerun meets all three kinds of damage, one chunk each.
    workdir = self.copy_of_done('damaged')
    chunk = lambda i: os.path.join(workdir, 'chunks', f'chunk_{i:07d}_{i + 1:07d}.npz')
    with open(chunk(1), 'r+b') as f:
      f.truncate(os.path.getsize(chunk(1)) // 2)
    with open(chunk(2), 'r+b') as f:
      f.truncate(0)
    shutil.copy(chunk(0), chunk(3))  # another chunk's victims under this name
    os.remove(os.path.join(workdir, 'metrics.json'))
    proc = launch(workdir, '--config.run.chunk_victims=1', victims=4)
    self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
    for i in (1, 2, 3):
      self.assertIn(f'{os.path.basename(chunk(i))} ', proc.stderr)
      self.assertTrue(os.path.exists(chunk(i) + '.damaged'), i)
    self.assertEqual(proc.stderr.count('recomputed'), 3, proc.stderr[-3000:])
    for name in ['reconstructions.npz'] + [os.path.relpath(chunk(i), workdir) for i in range(4)]:
      self.assertEqual(arrays_digest(os.path.join(workdir, name)),
                       arrays_digest(os.path.join(self.done, name)), name)

  def test_runs_exactly_the_steps_asked(self):
    workdir = os.path.join(self.tmp, 'steps')
    proc = launch(workdir, steps=5, chunk=2)
    self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
    with open(os.path.join(workdir, 'progress.jsonl')) as f:
      iterations = [int(line.split('"iteration": ')[1].split(',')[0]) for line in f]
    self.assertEqual(iterations, [2, 4, 5] * 2)  # one victim per round (device_victims=1)

  def test_bad_workdirs_end_in_one_line(self):
    a_file = os.path.join(self.tmp, 'a_file')
    with open(a_file, 'w') as f:
      f.write('keep me')
    for workdir, message in ((a_file, 'is a file, not a folder'),
                             (os.path.join(a_file, 'run'), 'which is a file')):
      with self.subTest(workdir):
        proc = launch(workdir)
        self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr[-2000:])
        self.assertIn(message, proc.stderr)
    with open(a_file) as f:
      self.assertEqual(f.read(), 'keep me')

  def test_html_in_a_config_string_is_refused_before_running(self):
    workdir = os.path.join(self.tmp, 'html')
    proc = launch(workdir, '--config.attack.name=analytic', '--config.model.name=mlp',
                  '--config.attack.labels=<script>alert(3)</script>')
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr[-2000:])
    self.assertFalse(os.path.exists(workdir))

  def test_each_bad_input_is_one_line_before_the_workdir_exists(self):
    # The hostile tester's inputs that used to run an attack first or end in a
    # traceback (data_test.py tests every file rule in-process).
    bad = os.path.join(self.tmp, 'bad')
    os.makedirs(bad)

    def npz(name, **arrays):
      path = os.path.join(bad, name)
      np.savez(path, **arrays)
      return path

    grey = np.zeros((2, 16, 16), np.uint8)
    files = {
        'negative labels': npz('neg.npz', images=grey, labels=np.array([0, -1])),
        'wrapped int64 label': npz('wrap.npz', images=grey, labels=np.array([0, 2**32 + 1])),
        'float labels': npz('float.npz', images=grey, labels=np.array([0.0, 1.5])),
        '5 channels': npz('five.npz', images=np.zeros((2, 16, 16, 5), np.uint8),
                          labels=np.array([0, 1])),
        'NaN pixels': npz('nan.npz', images=np.full((2, 16, 16), np.nan), labels=np.array([0, 1])),
    }
    npy = os.path.join(bad, 'one.npz')
    with open(npy, 'wb') as f:
      np.save(f, grey)
    files['.npy as npz'] = npy
    cases = [(('--config.data.name=npz', f'--config.data.path={path}'), os.path.basename(path))
             for path in files.values()]
    cases += [(('--config.attack.steps=0',), 'attack.steps'),
              (('--config.attack.labels=guess',), 'attack.labels'),
              (('--config.attack.init=zeros',), 'attack.init'),
              (('--config.model.name=lenet5', '--config.data.size=13'), 'data.size=13')]
    for i, (extra, message) in enumerate(cases):
      with self.subTest(' '.join(extra)):
        workdir = os.path.join(self.tmp, f'bad_{i}')
        proc = launch(workdir, *extra)
        self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr[-2000:])
        self.assertStartsWith(proc.stderr, 'error: ')
        self.assertIn(message, proc.stderr)
        self.assertFalse(os.path.exists(workdir))

  def _interrupt(self, workdir, sig):
    """Starts a 3-victim run and sends `sig` once its first chunk is saved."""
    proc = subprocess.Popen(_args(workdir, '--config.run.chunk_victims=1', victims=3, steps=60,
                                  chunk=20),
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = os.path.join(workdir, 'chunks', 'chunk_0000000_0000001.npz')
    deadline = time.time() + 300
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr

  def test_kill_and_ctrl_c_then_resume_bitwise(self):
    whole = os.path.join(self.tmp, 'whole')
    args = dict(victims=3, steps=60, chunk=20)
    self.assertEqual(launch(whole, '--config.run.chunk_victims=1', **args).returncode, 0)
    names = ('reconstructions.npz', 'chunks/chunk_0000000_0000001.npz',
             'chunks/chunk_0000001_0000002.npz', 'chunks/chunk_0000002_0000003.npz')
    for sig in (signal.SIGKILL, signal.SIGINT):
      with self.subTest(sig.name):
        workdir = os.path.join(self.tmp, sig.name)
        code, stderr = self._interrupt(workdir, sig)
        if code == 0:
          self.skipTest('the run finished before the signal arrived')
        self.assertFalse(os.path.exists(os.path.join(workdir, 'metrics.json')))
        if sig == signal.SIGINT:
          self.assertEqual(code, 130, stderr[-2000:])
          self.assertNotIn('Traceback', stderr)
          self.assertEqual(stderr.strip().splitlines()[-1],
                           'interrupted; rerun the same command to resume.')
        proc = launch(workdir, '--config.run.chunk_victims=1', **args)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        for name in names:
          self.assertEqual(arrays_digest(os.path.join(workdir, name)),
                           arrays_digest(os.path.join(whole, name)), name)
        self.assertEqual(snapshot(workdir)['curves.json'], snapshot(whole)['curves.json'])


if __name__ == '__main__':
  absltest.main()
