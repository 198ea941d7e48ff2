"""Test-wide JAX settings. (configs/, data_prep/ and mottr/ are importable through `pip install -e .`;
pytest adds scripts/bench for the lab scripts, see pyproject.toml.)"""
import os

# Tests compile many small programs and run each only a few times: XLA:CPU's LLVM optimisation costs
# more than it saves there (a tiny training step compiles in 13 s instead of 21). Set before JAX starts
# its backend; subprocesses inherit it.
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]).strip()

import jax  # noqa: E402

# Tests compile the same tiny programs many times (each training run builds its own jit):
# a persistent cache turns the repeats into lookups.
jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "mottr_test_jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
