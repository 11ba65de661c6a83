"""Test-session settings: share compiled programs between tests.

JAX's persistent compilation cache turns the second compile of an identical
program (same attack step in several tests) into a disk read.
"""

import os
import tempfile

import jax

jax.config.update('jax_compilation_cache_dir',
                  os.environ.get('DLG_JAX_TEST_CACHE',
                                 os.path.join(tempfile.gettempdir(), 'dlg_jax_test_jit_cache')))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
