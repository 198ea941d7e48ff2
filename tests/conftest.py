"""Test-wide JAX settings. (configs/, data_prep/ and mottr/ are importable through `pip install -e .`;
pytest adds scripts/bench for the lab scripts, see pyproject.toml.)"""
import os

import jax

# Tests compile the same tiny programs many times (each training run builds its own jit):
# a persistent cache turns the repeats into lookups.
jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "mottr_test_jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
