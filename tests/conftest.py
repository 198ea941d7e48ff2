"""Makes the repository root importable (configs/, data_prep/, mottr/) when pytest runs from anywhere."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

# Tests compile the same tiny programs many times (each training run builds its own jit):
# a persistent cache turns the repeats into lookups.
jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "mottr_test_jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
