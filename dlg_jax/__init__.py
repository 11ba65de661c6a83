"""dlg_jax: gradient-leakage attacks and defenses in federated learning, in JAX.

Audit a model of your own from Python (any Flax module with
``__call__(x, train)`` returning logits; see examples/audit_own_model.py):

  audit(model, variables, images, labels, attack='ig', client={...}) -> Audit
      attacks the images through the model's shared updates under the given
      client round and defense chain, and scores the reconstructions;
  write_report(audit, workdir)
      writes metrics.json, reconstructions, grid.png, curves and report.html;
  wrap(module, input_shape, num_classes) -> Model
      the model record the library passes around.

Run a config as `launch.py` does: ``runner.run(config, workdir)``; the
in-memory hops are ``experiment.check``, ``experiment.setup`` and
``experiment.attack_victims``. Attacks and their defaults:
``attacks.registry``; defenses: ``client.defenses``; models: ``models.MODELS``.
"""

from dlg_jax.audit import Audit
from dlg_jax.audit import audit
from dlg_jax.audit import wrap
from dlg_jax.audit import write_report
from dlg_jax.errors import ConfigError
from dlg_jax.models import Model

__version__ = '0.1.0'
__all__ = ['Audit', 'ConfigError', 'Model', 'audit', 'wrap', 'write_report']
