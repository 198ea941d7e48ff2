"""A light ResNet-style backbone trained from scratch (GroupNorm, basic blocks), computing in
`dtype` with float32 parameters.

Two of its layers compute flax's function another way, several times faster on XLA:CPU and with the
same parameters (`docs/stage21.md`): `GroupNorm` and the stem's `SpaceToDepthConv`.
"""
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class GroupNorm(nn.Module):
  """flax's `nn.GroupNorm` on [B, H, W, C] (same parameters, epsilon and fast variance), its
  statistics taken per channel over the pixels first: flax's reduction over (H, W, channels of a
  group) at once is 2-5x slower on XLA:CPU."""
  num_groups: int
  dtype: Any = jnp.float32
  epsilon: float = 1e-6
  scale_init: Callable = nn.initializers.ones

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    scale = self.param("scale", self.scale_init, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    flat = x.reshape(b, h * w, c).astype(jnp.float32)
    group = c // self.num_groups
    count = h * w * group
    mean = flat.sum(1).reshape(b, self.num_groups, group).sum(-1) / count
    square = jnp.einsum("bnc,bnc->bc", flat, flat).reshape(b, self.num_groups, group).sum(-1) / count
    var = jnp.maximum(square - mean * mean, 0.0)
    mul = jnp.repeat(jax.lax.rsqrt(var + self.epsilon), group, axis=1) * scale  # [B, C]
    add = bias - jnp.repeat(mean, group, axis=1) * mul
    return (x * mul[:, None, None, :] + add[:, None, None, :]).astype(self.dtype)


class SpaceToDepthConv(nn.Module):
  """flax's `nn.Conv(features, (3, 3), 2, use_bias=False)` (same kernel) run as a 2x2 stride-1
  convolution over 2x2 space-to-depth blocks: on a 3-channel image that is 3x faster on XLA:CPU.
  SAME padding of a stride-2 3x3 convolution on an even size pads one pixel after, none before."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if h % 2 or w % 2:
      return jax.lax.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    blocks = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c)
    # Tap (2i + di, 2j + dj) of a 4x4 kernel whose fourth row and column are zero.
    kernel = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0))).reshape(2, 2, 2, 2, c, self.features)
    kernel = kernel.transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, self.features)
    return jax.lax.conv_general_dilated(blocks, kernel, (1, 1), ((0, 1), (0, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _norm(c: int, dtype: Any, scale_init=nn.initializers.ones) -> GroupNorm:
  return GroupNorm(num_groups=min(8, c), dtype=dtype, scale_init=scale_init)


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
    x = SpaceToDepthConv(self.widths[0], dtype=self.dtype, name="Conv_0")(x)
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
