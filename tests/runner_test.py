"""runner.run: chunked, resumable, sharded runs: kill-and-resume, 1 = 2 = 4 devices, reports.

Tiny on purpose (4 victims of 16×16 grey photos, a few L-BFGS iterations):
what is tested is that a victim's result does not depend on how the run was
cut into chunks, interrupted, or spread over devices.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
import jax
import numpy as np

from configs import idlg as idlg_config
from dlg_jax import chunks
from dlg_jax.attacks import losses
from dlg_jax.attacks import solvers
from dlg_jax.attacks import stored
from dlg_jax import compare
from dlg_jax import experiment
from dlg_jax import parallel
from dlg_jax import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_VICTIM = ('mse', 'psnr', 'ssim', 'label_correct', 'recovered_labels', 'iterations',
              'evaluations', 'matching_loss', 'diverged')


def tiny_config(chunk_victims: int):
  config = idlg_config.get_config('smoke')
  config.data.size, config.data.channels, config.data.num_victims = 16, 1, 4
  config.attack.steps, config.attack.chunk, config.attack.memory = 6, 3, 3
  config.attack.restarts = 1
  config.run.chunk_victims = chunk_victims
  # Two victims per device per program: the results below are then bitwise
  # independent of chunking and device count (parallel.rounds).
  config.run.device_victims = 2
  return config


def _victims(record):
  return [{k: v[k] for k in PER_VICTIM} for v in record['victims']]


class Interrupted(Exception):
  pass


class ChunkedRunTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp()
    cls.full = os.path.join(cls.tmp, 'full')
    cls.calls = []
    real = experiment.attack_victims

    def counted(exp, ids, **kw):
      cls.calls.append(tuple(int(i) for i in ids))
      return real(exp, ids, **kw)
    with mock.patch.object(experiment, 'attack_victims', counted):
      cls.record = runner.run(tiny_config(2), cls.full)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp)
    super().tearDownClass()

  def test_plan(self):
    self.assertEqual(self.calls, [(0, 1), (2, 3)])
    self.assertEqual([c.stop for c in chunks.plan(5, 2)], [2, 4, 5])
    self.assertEqual(chunks.plan(3, 0), [chunks.Chunk(0, 0, 3)])

  def test_kill_and_resume_redoes_nothing_and_matches(self):
    workdir = os.path.join(self.tmp, 'resumed')
    calls, real = [], experiment.attack_victims

    def dies_on_second(exp, ids, **kw):
      calls.append(tuple(int(i) for i in ids))
      if len(calls) == 2:
        raise Interrupted()  # as if killed while the second chunk ran
      return real(exp, ids, **kw)
    with mock.patch.object(experiment, 'attack_victims', dies_on_second):
      with self.assertRaises(Interrupted):
        runner.run(tiny_config(2), workdir)
    self.assertEqual(sorted(os.listdir(os.path.join(workdir, 'chunks'))),
                     ['chunk_0000000_0000002.npz', 'manifest.json'])
    self.assertFalse(os.path.exists(os.path.join(workdir, 'metrics.json')))

    calls.clear()
    with mock.patch.object(experiment, 'attack_victims', dies_on_second):
      record = runner.run(tiny_config(2), workdir)
    self.assertEqual(calls, [(2, 3)])  # only the missing chunk ran
    self.assertEqual(_victims(record), _victims(self.record))
    summary = {k: v for k, v in record['summary'].items() if k != 'seconds'}
    self.assertEqual(summary, {k: v for k, v in self.record['summary'].items() if k != 'seconds'})
    with np.load(os.path.join(workdir, 'reconstructions.npz')) as a, \
         np.load(os.path.join(self.full, 'reconstructions.npz')) as b:
      np.testing.assert_array_equal(a['reconstructions'], b['reconstructions'])

    changed = tiny_config(2)
    changed.attack.steps = 9
    with self.assertRaisesRegex(ValueError, 'different config'):
      runner.run(changed, workdir)

  def test_one_chunk_gives_the_same_victims(self):
    record = runner.run(tiny_config(0), os.path.join(self.tmp, 'one_chunk'))
    self.assertEqual(record['run']['chunks'], 1)
    for a, b in zip(_victims(record), _victims(self.record)):
      # One chunk of 4 runs two rounds of the same 2-victim program that the
      # chunks of 2 run: every per-victim number is bitwise the same.
      self.assertEqual(a, b)
    with np.load(os.path.join(self.tmp, 'one_chunk', 'reconstructions.npz')) as a, \
         np.load(os.path.join(self.full, 'reconstructions.npz')) as b:
      np.testing.assert_array_equal(a['reconstructions'], b['reconstructions'])

  def test_a_run_traces_its_attack_programs_once(self):
    # Fresh solver settings (memory 4), so no earlier test compiled them.
    def traces(chunk_victims, name):
      config = tiny_config(chunk_victims)
      config.attack.memory = 4
      real, count = losses.matching_loss, []

      def counted(*args, **kw):  # Python runs only while JAX traces
        count.append(1)
        return real(*args, **kw)
      with mock.patch.object(losses, 'matching_loss', counted):
        runner.run(config, os.path.join(self.tmp, name))
      return len(count)
    # The solvers jit the loss itself (solvers.traced_once), and JAX keeps
    # that trace across programs: start from empty caches so the first run
    # traces whatever earlier tests did; the store of traced programs
    # (attacks.stored) starts empty too.
    jax.clear_caches()
    store = os.path.join(self.tmp, 'store')
    with mock.patch.object(stored, 'cache_folder', return_value=store):
      first = traces(0, 'traced_one_chunk')
      self.assertGreater(first, 0)
      # Two chunks of two victims, two rounds each: every program is reused,
      # nothing is traced again.
      self.assertEqual(traces(2, 'traced_two_chunks'), 0)
      # A new process (no programs in memory) reads them from the store.
      solvers.clear_programs()
      jax.clear_caches()
      self.assertEqual(traces(0, 'traced_from_the_store'), 0)
    self.assertLen(os.listdir(os.path.join(store, stored.SUBDIR)), 2)  # init and chunk

  def test_report_html_and_compare_hold_the_numbers(self):
    with open(os.path.join(self.full, 'report.html'), encoding='utf-8') as f:
      page = f.read()
    summary = self.record['summary']
    self.assertIn('Threat model', page)
    self.assertIn("reads each label off the output layer's gradient", page.replace('&#x27;', "'"))
    self.assertIn(f'{summary["mean_psnr"]:.2f}', page)
    self.assertEqual(page.count('data:image/png;base64,'), 2)  # grid and curves, embedded
    out = os.path.join(self.tmp, 'compare')
    rows = compare.compare([self.full, self.full], out)
    self.assertEqual(rows[0]['mean_psnr'], summary['mean_psnr'])
    self.assertEqual((rows[0]['attack'], rows[0]['defense'], rows[0]['data']),
                     ('idlg', 'none', 'photos'))
    with open(os.path.join(out, 'compare.md')) as f:
      self.assertIn(f'| full | idlg | none | lenet | photos | 4 | {summary["mean_psnr"]:.4g} |',
                    f.read())
    for name in ('compare.csv', 'compare.html', 'compare.png', 'compare.json'):
      self.assertGreater(os.path.getsize(os.path.join(out, name)), 0, name)
    with self.assertRaisesRegex(FileNotFoundError, 'no config.json'):
      compare.row(self.tmp)


_SHARDED = r'''
import sys
import jax, numpy as np
sys.path.insert(0, sys.argv[1])
from dlg_jax import experiment, parallel
from tests import runner_test as t
assert jax.local_device_count() == 4, jax.devices()
exp = experiment.setup(t.tiny_config(0))
placed = []  # devices each round's victims were put on
real = parallel.shard_victims
parallel.shard_victims = lambda tree, mesh: placed.append(mesh.devices.size) or real(tree, mesh)
out = {}
for k in (1, 2, 4):
  mesh = parallel.victim_mesh(jax.local_devices()[:k])
  ids = np.arange(3)  # 2 victims per device: rounds [0 1] [2 2] | [0 1 2 2] | [0 1 2 2 2 2 2 2]
  placed.clear()
  result, _, scores, _ = experiment.attack_victims(exp, ids, mesh=mesh, device_victims=2)
  for f in ('images', 'labels', 'loss', 'iterations', 'evaluations', 'diverged', 'loss_trace'):
    out[f'{k}/{f}'] = np.asarray(getattr(result, f))
  for f in ('mse', 'psnr', 'ssim'):
    out[f'{k}/{f}'] = getattr(scores, f)
  out[f'{k}/mse_trace'] = np.stack([m for _, m in scores.mse_trace])
  out[f'{k}/rounds'] = np.asarray(placed)
np.savez(sys.argv[2], **out)
'''


class CompilationCacheTest(absltest.TestCase):

  def test_a_cache_already_chosen_wins_and_empty_means_off(self):
    chosen = jax.config.jax_compilation_cache_dir  # the test session's (conftest.py)
    self.assertTrue(chosen)
    self.assertEqual(runner.use_compilation_cache('~/elsewhere'), chosen)
    self.assertEqual(jax.config.jax_compilation_cache_dir, chosen)
    self.assertEqual(idlg_config.get_config().run.compilation_cache, '~/.cache/dlg_jax/xla')


class PinCoresTest(absltest.TestCase):
  """run.cpu_cores: parsed, checked against the usable cores, applied only before JAX starts."""

  def test_parse(self):
    self.assertEqual(parallel.parse_cores('0,2-3'), {0, 2, 3})
    self.assertEqual(parallel.parse_cores(''), set())
    with self.assertRaisesRegex(ValueError, "look like '0', '0-3'"):
      parallel.parse_cores('first')

  def test_refusals(self):
    parallel.pin_cpu_cores('')  # leaves the process alone
    usable = sorted(os.sched_getaffinity(0))
    with self.assertRaisesRegex(ValueError, 'usable: '):
      parallel.pin_cpu_cores(str(usable[-1] + 1))
    jax.devices()  # the backend is up in this process
    with self.assertRaisesRegex(ValueError, 'before JAX starts'):
      parallel.pin_cpu_cores(str(usable[0]))
    self.assertEqual(sorted(os.sched_getaffinity(0)), usable)

  def test_not_in_the_fingerprint(self):
    # The two processes of one run pin different cores and share chunk files.
    a, b = tiny_config(0), tiny_config(0)
    b.run.cpu_cores = '1'
    self.assertEqual(chunks.fingerprint(a.to_dict()), chunks.fingerprint(b.to_dict()))


class ShardedTest(absltest.TestCase):

  def test_two_and_four_devices_equal_one_bitwise(self):
    env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
               JAX_PLATFORMS='cpu', PYTHONPATH=ROOT,
               JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or '',
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5')
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'out.npz')
      proc = subprocess.run([sys.executable, '-c', _SHARDED, ROOT, path], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
      self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
      with np.load(path) as f:
        out = dict(f)
    # 3 victims, 2 per device: two rounds on one device, one on two and on four.
    np.testing.assert_array_equal(out['1/rounds'], [1, 1])
    np.testing.assert_array_equal(out['2/rounds'], [2])
    np.testing.assert_array_equal(out['4/rounds'], [4])
    # Every device runs the program compiled for 2 victims, whatever the
    # device count, so the numbers are bitwise equal (not merely close: with
    # device_victims=0, the chunk split evenly, 3, 2 and 1 victims per device
    # gave images up to 6e-5 apart after these 6 iterations; BUILD_NOTES.md).
    fields = {name.split('/')[1] for name in out if not name.endswith('rounds')}
    for k in ('2', '4'):
      for field in sorted(fields):
        np.testing.assert_array_equal(out[f'{k}/{field}'], out[f'1/{field}'],
                                      err_msg=f'{k} devices, {field}')


if __name__ == '__main__':
  absltest.main()
