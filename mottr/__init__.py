"""mottr: an end-to-end Transformer multi-object tracker (MOTR-style) in JAX/Flax."""
