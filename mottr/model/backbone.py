"""A light ResNet-style backbone trained from scratch (GroupNorm, basic blocks), computing in
`dtype` with float32 parameters."""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _norm(c: int, dtype: Any, scale_init=nn.initializers.ones) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=min(8, c), dtype=dtype, scale_init=scale_init)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions and a residual. With `zero_init` the residual branch's last norm starts at
  scale 0, so the block starts as the identity on its (non-negative) input: a block added to a trained
  backbone leaves its function unchanged until training moves it."""
  features: int
  strides: int = 1
  zero_init: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda size, strides=1: nn.Conv(self.features, size, strides, use_bias=False, dtype=self.dtype)
    y = conv((3, 3), self.strides)(x)
    y = nn.relu(_norm(self.features, self.dtype)(y))
    y = conv((3, 3))(y)
    y = _norm(self.features, self.dtype, nn.initializers.zeros if self.zero_init else nn.initializers.ones)(y)
    if x.shape[-1] != self.features or self.strides != 1:
      x = conv((1, 1), self.strides)(x)
      x = _norm(self.features, self.dtype)(x)
    return nn.relu(x + y)


class ResNetLite(nn.Module):
  """Stem (stride 2) then one stride-2 stage per entry of `widths[1:]`, of `blocks` basic blocks each:
  total stride 2**len(widths). Returns every stage's output, finest first (the last one is the
  coarsest, at the total stride). A stage's first block is `BasicBlock_{stage}` whatever `blocks` is,
  and its later ones (`Extra_{stage}_{j}`) start as the identity, so a deeper backbone warm-starts
  from a shallower one's checkpoint with the same function (`config.init_from`)."""
  widths: Sequence[int] = (32, 48, 96, 192)
  blocks: Sequence[int] = (1, 1, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    x = nn.Conv(self.widths[0], (3, 3), 2, use_bias=False, dtype=self.dtype)(x)
    x = nn.relu(_norm(self.widths[0], self.dtype)(x))
    stages = []
    for i, (width, n) in enumerate(zip(self.widths[1:], self.blocks)):
      x = BasicBlock(width, strides=2, dtype=self.dtype, name=f"BasicBlock_{i}")(x)
      for j in range(1, n):
        x = BasicBlock(width, zero_init=True, dtype=self.dtype, name=f"Extra_{i}_{j}")(x)
      stages.append(x)
    return stages

  @property
  def stride(self) -> int:
    return 2**len(self.widths)
