"""Runs one experiment: python launch.py --config=configs/idlg.py --workdir=runs/x

A config with a `sweep` field runs a grid of them instead (`dlg_jax.sweeps`).

Kept short on purpose: the logic is in `dlg_jax.runner`, which can be tested.
A bad setting (the library's `ConfigError`, a bad flag or config file) ends
in one line saying what to change and exit status 2; any other exception is
a bug and keeps its traceback.
"""

import difflib
import errno
import importlib.util
import logging
import os
import sys

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

from dlg_jax import runner
from dlg_jax import sweeps
from dlg_jax.errors import ConfigError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', 'runs/default', 'Where the report goes.')
flags.mark_flags_as_required(['config'])

# Errors of the world rather than of the code: a full or read-only disk, a
# file one may not read. They end in one line; any other OSError is a bug.
_WORLD_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                           errno.EIO})


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """The config of `path[:arg]`, as absl will load it, or a ConfigError saying why not."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise ConfigError(f'cannot load the config file {path!r} (no such file); give a file such '
                      'as configs/idlg.py.')
  module_spec = importlib.util.spec_from_file_location('_config_file', path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except (SyntaxError, ImportError) as e:
    raise ConfigError(f'the config file {path!r} cannot be imported: '
                      f'{type(e).__name__}: {e}') from None
  if not hasattr(module, 'get_config'):
    raise ConfigError(f'the config file {path!r} has no get_config(arg) function.')
  return module.get_config(arg or None)


def check_overrides(config: ml_collections.ConfigDict, argv: list[str]) -> None:
  """Every --config.a.b override names a field the config file defines."""
  for arg in argv[1:]:
    if not arg.startswith('--config.'):
      continue
    flag = arg.split('=', 1)[0]
    node, parts = config, flag[len('--config.'):].split('.')
    for i, part in enumerate(parts):
      if isinstance(node, ml_collections.ConfigDict) and part in node:
        node = node[part]
        continue
      known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      close = difflib.get_close_matches(part, known, n=1)
      hint = f' Did you mean {close[0]!r}?' if close else ''
      model_hint = (f' Other module fields of the model go in --config.model.options, e.g. '
                    f'--config.model.options={part}=VALUE,act=sigmoid.'
                    if parts[:i] == ['model'] else '')
      raise ConfigError(f'{flag}: the config has no field {part!r}.{hint} Overrides can only '
                        f'change fields the config file defines.{model_hint}')


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, after our own checks of the config file and its overrides."""
  try:
    given = [a.split('=', 1)[1] for a in argv[1:] if a.startswith('--config=')]
    if given:
      check_overrides(load_config_file(given[-1]), argv)
    return FLAGS(argv)
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except flags.Error as e:  # absl's own flag errors (a value of the wrong type, ...)
    print(f'error: {" ".join(str(e).split())}', file=sys.stderr)
    sys.exit(2)


def main(argv):
  del argv
  # JAX's INFO lines (which backends it probed) would stand between a user and
  # the one line that says what went wrong.
  logging.getLogger('jax').setLevel(logging.WARNING)
  try:
    if 'sweep' in FLAGS.config:  # a grid of experiments (configs/defenses.py)
      sweeps.launch(FLAGS.config, FLAGS.workdir)
    else:
      runner.run(FLAGS.config, FLAGS.workdir)
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print('interrupted; rerun the same command to resume.', file=sys.stderr)
    sys.exit(130)
  except OSError as e:
    if e.errno not in _WORLD_ERRNOS:
      raise
    where = f' {e.filename}' if e.filename else ''
    print(f'error:{where}: {e.strerror}; free space or fix permissions, then rerun the same '
          'command to resume.', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
