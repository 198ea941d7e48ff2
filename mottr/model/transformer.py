"""Transformer pieces: sine position encodings, encoder and decoder layers (post-norm, as DETR).

Every layer computes in `dtype` (float32, or bfloat16 on accelerators) and keeps float32 parameters.
"""
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def sine_embed(coords: jax.Array, dim: int, temperature: float = 10000.0) -> jax.Array:
  """Sine/cosine embedding of each coordinate in [0, 1]: [..., K] -> [..., K * dim]."""
  half = dim // 2
  freqs = temperature**(jnp.arange(half) / half)
  angles = coords[..., None] * 2 * math.pi / freqs
  emb = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
  return emb.reshape(*coords.shape[:-1], coords.shape[-1] * dim)


def grid_centres(h: int, w: int) -> jax.Array:
  """Normalised (cx, cy) of every cell of an h x w grid, row-major: [h*w, 2]."""
  ys, xs = jnp.meshgrid((jnp.arange(h) + 0.5) / h, (jnp.arange(w) + 0.5) / w, indexing="ij")
  return jnp.stack([xs.ravel(), ys.ravel()], axis=-1)


class Mlp(nn.Module):
  hidden: int
  out: int
  layers: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for _ in range(self.layers - 1):
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    return nn.Dense(self.out, dtype=self.dtype)(x)


class EncoderLayer(nn.Module):
  d_model: int
  num_heads: int
  ffn_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, pos: jax.Array) -> jax.Array:
    q = x + pos
    y = nn.MultiHeadDotProductAttention(self.num_heads, dtype=self.dtype)(q, q, x)
    x = nn.LayerNorm(dtype=self.dtype)(x + y)
    x = nn.LayerNorm(dtype=self.dtype)(x + Mlp(self.ffn_dim, self.d_model, dtype=self.dtype)(x))
    return x


class DecoderLayer(nn.Module):
  """Self-attention among queries (`self_mask` [B, 1, N, N]: which query may look at which; it hides
  empty track slots), cross-attention to memory, FFN."""
  d_model: int
  num_heads: int
  ffn_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tgt: jax.Array, query_pos: jax.Array, memory: jax.Array, memory_pos: jax.Array,
               self_mask: jax.Array) -> jax.Array:
    attention = lambda: nn.MultiHeadDotProductAttention(self.num_heads, dtype=self.dtype)
    norm = lambda: nn.LayerNorm(dtype=self.dtype)
    q = tgt + query_pos
    tgt = norm()(tgt + attention()(q, q, tgt, mask=self_mask))
    tgt = norm()(tgt + attention()(tgt + query_pos, memory + memory_pos, memory))
    tgt = norm()(tgt + Mlp(self.ffn_dim, self.d_model, dtype=self.dtype)(tgt))
    return tgt
