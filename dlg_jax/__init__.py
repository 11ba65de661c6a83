"""dlg_jax: gradient-leakage attacks and defenses in federated learning, in JAX."""

__version__ = '0.1.0'
