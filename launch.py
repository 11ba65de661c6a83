"""Runs one experiment: python launch.py --config=configs/idlg.py --workdir=runs/x

A config with a `sweep` field runs a grid of them instead (dlg_jax/sweep.py).

Kept short on purpose: all logic is in `dlg_jax.experiment`, which can be
tested. A bad config ends with one line saying what to change, not a trace.
"""

import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from dlg_jax import experiment
from dlg_jax import sweep

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', 'runs/default', 'Where the report goes.')
flags.mark_flags_as_required(['config'])


def _one_line(error: BaseException, argv: list[str]) -> str:
  """What went wrong while absl read the flags and the config, in one line."""
  if isinstance(error, (AttributeError, KeyError)):
    # ml_collections refuses an override of a field the (locked) config lacks.
    inner = error.args[0] if error.args else error
    inner = inner.args[0] if isinstance(inner, BaseException) and inner.args else inner
    name, *hint = str(inner).splitlines()
    name = name.strip('\'"')
    bad = [a.split('=')[0] for a in argv[1:]
           if a.startswith('--config.') and name in a.split('=')[0].split('.')]
    flag = bad[0] if bad else '--config'
    model_hint = (f' Other module fields of the model go in --config.model.options, e.g. '
                  f'--config.model.options={name}=VALUE,act=sigmoid.'
                  if flag.startswith('--config.model.') else '')
    return (f'{flag}: the config has no field {name!r}. '
            + (' '.join(hint) + ' ' if hint else '')
            + 'Overrides can only change fields the config file defines.' + model_hint)
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if isinstance(error, (SyntaxError, ImportError)):
    return f'the config file cannot be imported: {type(error).__name__}: {error}'
  if isinstance(error, OSError):
    given = [a.split('=', 1)[1] for a in argv[1:] if a.startswith('--config=')]
    path = given[0].split(':')[0] if given else ''
    cause = error.__cause__ or error.__context__
    why = ('no such file' if not os.path.exists(path) else
           f'{type(cause).__name__}: {cause}' if cause else lines[0] if lines else repr(error))
    return (f'cannot load the config file {path!r} ({why}); give a file such as '
            'configs/idlg.py.')
  # absl puts a config file's own exception, traceback and all, into the
  # message: keep its first line (which flag) and its last (what was raised).
  if len(lines) > 1 and any(line.startswith('Traceback') for line in lines):
    return f'{lines[0]} {lines[-1]}'
  return ' '.join(lines) or repr(error)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, but a bad flag or config ends in one line, exit code 2."""
  try:
    rest = FLAGS(argv)
    _ = 'sweep' in FLAGS.config  # a config file that cannot be loaded fails here, not in main
    return rest
  except (flags.Error, AttributeError, KeyError, OSError, SyntaxError, ImportError) as e:
    print(f'error: {_one_line(e, argv)}', file=sys.stderr)
    sys.exit(2)


def main(argv):
  del argv
  try:
    if 'sweep' in FLAGS.config:  # a grid of experiments (configs/defenses.py)
      sweep.launch(FLAGS.config, FLAGS.workdir)
    else:
      experiment.run(FLAGS.config, FLAGS.workdir)
  except (ValueError, FileNotFoundError, KeyError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
