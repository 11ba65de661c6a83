"""Runs experiments at scale: chunks, resume, device rounds, hosts, progress, report.

(Transitional: `run` is `experiment.run` until the split lands.)
"""

from dlg_jax.experiment import run  # noqa: F401
