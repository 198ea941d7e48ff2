"""A light ResNet-style backbone trained from scratch (GroupNorm, basic blocks)."""
from typing import Sequence

import flax.linen as nn
import jax


def _norm(c: int) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=min(8, c))


class BasicBlock(nn.Module):
  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.Conv(self.features, (3, 3), self.strides, use_bias=False)(x)
    y = nn.relu(_norm(self.features)(y))
    y = nn.Conv(self.features, (3, 3), use_bias=False)(y)
    y = _norm(self.features)(y)
    if x.shape[-1] != self.features or self.strides != 1:
      x = nn.Conv(self.features, (1, 1), self.strides, use_bias=False)(x)
      x = _norm(self.features)(x)
    return nn.relu(x + y)


class ResNetLite(nn.Module):
  """Stem (stride 2) then one stride-2 stage per entry of `widths[1:]`: total stride 2**len(widths)."""
  widths: Sequence[int] = (32, 48, 96, 192)
  blocks: Sequence[int] = (1, 1, 1)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.widths[0], (3, 3), 2, use_bias=False)(x)
    x = nn.relu(_norm(self.widths[0])(x))
    for width, n in zip(self.widths[1:], self.blocks):
      x = BasicBlock(width, strides=2)(x)
      for _ in range(n - 1):
        x = BasicBlock(width)(x)
    return x

  @property
  def stride(self) -> int:
    return 2**len(self.widths)
