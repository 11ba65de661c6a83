"""Runs one experiment: python launch.py --config=configs/idlg.py --workdir=runs/x

A config with a `sweep` field runs a grid of them instead (dlg_jax/sweep.py).

Kept short on purpose: all logic is in `dlg_jax.experiment`, which can be
tested. A bad config ends with one line saying what to change, not a trace.
"""

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
  app.run(main)
