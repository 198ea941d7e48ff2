"""Test-wide JAX settings. (configs/, data_prep/ and mottr/ are importable through `pip install -e .`;
pytest adds scripts/bench for the lab scripts, see pyproject.toml.)"""
import os

# Tests compile many small programs and run each only a few times: XLA:CPU's LLVM optimisation costs
# more than it saves there (a tiny training step compiles in 13 s instead of 21). Set before JAX starts
# its backend; subprocesses inherit it.
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]).strip()

# Tests compile the same tiny programs many times (each training run builds its own jit), and again
# on every run of the suite: a persistent cache turns the repeats into lookups. Set through the
# environment, so the `python -c` subprocesses of the tests use it too (mottr.train's CLI sets its own).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "mottr_test_jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
