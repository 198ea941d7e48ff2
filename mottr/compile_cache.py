"""JAX's persistent compilation cache, so a second run of the same program skips XLA compilation."""
import os

import jax

CACHE_DIR = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mottr", "jax")


def enable(directory: str = CACHE_DIR, min_compile_secs: float = 1.0) -> None:
  """Caches every compiled program that took >= `min_compile_secs` in `directory` (created on demand)."""
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_secs)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
