"""MOTR: a DETR-style detector whose decoder also carries track queries from frame to frame.

Per frame: backbone -> encoder over the stride-16 (or 32) feature map with 2D sine positions ->
encoder proposals (one anchor box per cell, class + box head) -> the top-`num_queries` proposals
become detect queries (content from their encoder feature, reference = proposal box) -> decoder
over [track queries ; detect queries] with iterative box refinement -> class/box heads per layer.
With `refine_points` > 0 a last stage refines every query's final box from the backbone stage
before the last (stride 8 with the default widths) sampled on a grid over the box (`BoxRefine`):
the stride-16 attention places a box to within about a cell, and the finer map is where its edges are.
QIM turns the decoder outputs of the queries that go on into next frame's track queries.

Every frame comes with its time gap from the previous one (in 1/30 s), embedded into the track
queries' content, so one model serves any frame rate or training stride; a track query is decoded
from its last box and finds its move in the image. Like a detect query, whose content is the
encoder feature of its proposal's cell, a track query adds the encoder feature of the cell under
its last centre: it sees the current frame where its object was.

`dtype` is the compute type (`config.model.dtype`: float32, or bfloat16 for accelerators); the
parameters, the carried track queries and every output that a loss or the tracker reads (logits,
boxes) stay float32, so both types load the same checkpoints.
"""
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mottr.model.backbone import GroupNorm, ResNetLite
from mottr.model.transformer import DecoderLayer, EncoderLayer, Mlp, grid_centres, sine_embed
from mottr.schema import UserError


def inverse_sigmoid(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  x = jnp.clip(x, eps, 1 - eps)
  return jnp.log(x / (1 - x))


class Memory(NamedTuple):
  """Encoder output of one frame (batched)."""
  features: jax.Array        # [B, HW, D]
  pos: jax.Array             # [HW, D]
  proposal_logits: jax.Array  # [B, HW, C]
  proposal_boxes: jax.Array  # [B, HW, 4] cxcywh
  fine: jax.Array | None = None  # [B, H', W', C] the backbone stage before the last, when the model refines boxes


class TrackQueries(NamedTuple):
  embed: jax.Array     # [B, S, D]
  ref: jax.Array       # [B, S, 4] cxcywh: the box of the previous frame
  valid: jax.Array     # [B, S] bool


class DecoderOutput(NamedTuple):
  logits: jax.Array  # [L, B, S+Q, C]   every decoder layer (the last one is the prediction)
  boxes: jax.Array   # [L(+1), B, S+Q, 4]  every decoder layer (+ the refined boxes, the prediction)
  hidden: jax.Array  # [B, S+Q, D]      last layer's query states, input of QIM


def empty_tracks(batch: int, slots: int, d_model: int) -> TrackQueries:
  return TrackQueries(jnp.zeros((batch, slots, d_model), jnp.float32),
                      jnp.full((batch, slots, 4), 0.5, jnp.float32), jnp.zeros((batch, slots), bool))


def motion_features(tracks: TrackQueries, gap: jax.Array) -> jax.Array:
  """[B, S, 5]: log gap, gap / 10, and three zeros where the deleted velocity prior put the
  predicted centre move and whether it was known (kept so that trained weights load)."""
  b, s = tracks.valid.shape
  per_clip = jnp.broadcast_to(jnp.stack([jnp.log(gap), gap / 10.0], -1)[:, None], (b, s, 2))
  return jnp.concatenate([per_clip, jnp.zeros((b, s, 3), per_clip.dtype)], -1)


def cell_under(boxes: jax.Array, cells: int) -> jax.Array:
  """Row-major index [...] of the cell of a square grid of `cells` cells under each box centre."""
  side = int(round(cells**0.5))
  assert side * side == cells, f"{cells} cells do not form a square grid"
  col = jnp.clip(jnp.floor(boxes[..., 0] * side), 0, side - 1).astype(jnp.int32)
  row = jnp.clip(jnp.floor(boxes[..., 1] * side), 0, side - 1).astype(jnp.int32)
  return row * side + col


def bilinear_sample(feature: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
  """Bilinear samples [B, ..., C] of a map [B, H, W, C] at normalised image coordinates x, y
  [B, ...] (cell centres at (i + 0.5) / W; outside the map the border cells are repeated)."""
  b, h, w, c = feature.shape
  px, py = x * w - 0.5, y * h - 0.5
  x0, y0 = jnp.floor(px), jnp.floor(py)
  fx, fy = px - x0, py - y0
  flat = feature.reshape(b, h * w, c)
  out = 0.0
  for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                         (1, 1, fx * fy)):
    col = jnp.clip(x0 + dx, 0, w - 1).astype(jnp.int32)
    row = jnp.clip(y0 + dy, 0, h - 1).astype(jnp.int32)
    index = (row * w + col).reshape(b, -1, 1)
    values = jnp.take_along_axis(flat, index, axis=1).reshape(*x.shape, c)
    out = out + values * weight[..., None].astype(values.dtype)
  return out


class BoxRefine(nn.Module):
  """A box correction from a finer feature map: `points` x `points` bilinear samples over each box
  grown by `grow` (so the edges of a box that is too small are seen), with the query's state and
  the box itself -> (dcx, dcy) in box widths/heights and log size factors. Zero-initialised last
  layer: a new head starts as the identity, so trained weights without it load unchanged."""
  points: int
  hidden: int = 256
  channels: int = 32
  grow: float = 1.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, fine: jax.Array, boxes: jax.Array, state: jax.Array) -> jax.Array:
    b, n, _ = boxes.shape
    offsets = ((jnp.arange(self.points) + 0.5) / self.points - 0.5) * self.grow
    xs = boxes[..., None, 0:1] + offsets[None, :] * boxes[..., None, 2:3]  # [B, N, 1, G]
    ys = boxes[..., None, 1:2] + offsets[:, None] * boxes[..., None, 3:4]  # [B, N, G, 1]
    xs, ys = jnp.broadcast_arrays(xs, ys)
    samples = bilinear_sample(fine, xs, ys)                                  # [B, N, G, G, C]
    local = nn.Dense(self.channels, dtype=self.dtype)(samples).reshape(b, n, -1)
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(local) + nn.Dense(self.hidden, dtype=self.dtype)(state)
                + nn.Dense(self.hidden, dtype=self.dtype)(boxes.astype(self.dtype)))
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    delta = nn.Dense(4, kernel_init=nn.initializers.zeros, dtype=self.dtype)(x).astype(jnp.float32)
    centre = boxes[..., :2] + delta[..., :2] * boxes[..., 2:]
    size = boxes[..., 2:] * jnp.exp(jnp.clip(delta[..., 2:], -1.0, 1.0))
    return jnp.concatenate([centre, size], -1)


class MOTR(nn.Module):
  num_classes: int = 2
  d_model: int = 128
  num_heads: int = 8
  ffn_dim: int = 512
  enc_layers: int = 2
  dec_layers: int = 2
  num_queries: int = 16
  backbone_widths: Sequence[int] = (32, 48, 96, 192)
  backbone_blocks: Sequence[int] = (1, 1, 1)
  anchor_size: float = 0.1
  refine_points: int = 0
  dtype: Any = jnp.float32

  def setup(self):
    d, dt = self.d_model, self.dtype
    self.backbone = ResNetLite(self.backbone_widths, self.backbone_blocks, dtype=dt)
    self.input_proj = nn.Dense(d, dtype=dt)
    self.input_norm = GroupNorm(num_groups=8, dtype=dt)
    self.encoder = [EncoderLayer(d, self.num_heads, self.ffn_dim, dtype=dt) for _ in range(self.enc_layers)]
    self.proposal_class = nn.Dense(self.num_classes, bias_init=nn.initializers.constant(-4.6), dtype=dt)
    self.proposal_box = Mlp(d, 4, 3, dtype=dt)
    self.query_content = nn.Dense(d, dtype=dt)
    self.query_content_norm = nn.LayerNorm(dtype=dt)
    self.query_pos = Mlp(d, d, dtype=dt)
    self.decoder = [DecoderLayer(d, self.num_heads, self.ffn_dim, dtype=dt) for _ in range(self.dec_layers)]
    self.class_heads = [nn.Dense(self.num_classes, bias_init=nn.initializers.constant(-4.6), dtype=dt)
                        for _ in range(self.dec_layers)]
    self.box_heads = [Mlp(d, 4, 3, name=f"box_head_{i}", dtype=dt) for i in range(self.dec_layers)]
    self.qim_attn = nn.MultiHeadDotProductAttention(self.num_heads, dtype=dt)
    self.qim_norm1 = nn.LayerNorm(dtype=dt)
    self.qim_ffn = Mlp(self.ffn_dim, d, dtype=dt)
    self.qim_norm2 = nn.LayerNorm(dtype=dt)
    self.motion_embed = nn.Dense(d, dtype=dt)
    if self.refine_points:
      self.box_refine = BoxRefine(self.refine_points, dtype=dt)

  def __call__(self, images: jax.Array, tracks: TrackQueries) -> tuple[Memory, DecoderOutput, jax.Array]:
    """Touches every parameter (used by init): one frame and a QIM update of all slots."""
    memory = self.encode(images)
    out = self.decode(memory, tracks, jnp.ones((images.shape[0],), jnp.float32))
    slots = tracks.valid.shape[1]
    return memory, out, self.qim(out.hidden[:, :slots], tracks.valid)

  def encode(self, images: jax.Array) -> Memory:
    """uint8 images [B, H, W, 3] -> encoder memory and proposals."""
    x = ((images.astype(jnp.float32) / 255.0 - 0.45) / 0.25).astype(self.dtype)
    stages = self.backbone(x)
    feat = stages[-1]
    b, h, w, _ = feat.shape
    feat = self.input_norm(self.input_proj(feat)).reshape(b, h * w, self.d_model)
    centres = grid_centres(h, w)
    pos = sine_embed(centres, self.d_model // 2)
    for layer in self.encoder:
      feat = layer(feat, pos[None])
    anchors = jnp.concatenate([centres, jnp.full_like(centres, self.anchor_size)], axis=-1)
    boxes = jax.nn.sigmoid(inverse_sigmoid(anchors)[None] + self.proposal_box(feat).astype(jnp.float32))
    fine = stages[-2] if self.refine_points else None
    return Memory(feat, pos, self.proposal_class(feat).astype(jnp.float32), boxes, fine)

  def decode(self, memory: Memory, tracks: TrackQueries, gap: jax.Array) -> DecoderOutput:
    """Decodes [track queries ; top-k proposals as detect queries] against one frame's memory;
    `gap` [B] is the time since the tracks' frame in 1/30 s."""
    scores = memory.proposal_logits.max(-1)
    _, top = jax.lax.top_k(scores, self.num_queries)                       # [B, Q]
    det_feat = jnp.take_along_axis(memory.features, top[..., None], axis=1)
    det_ref = jax.lax.stop_gradient(jnp.take_along_axis(memory.proposal_boxes, top[..., None], axis=1))
    det_content = self.query_content_norm(self.query_content(det_feat))
    tgt = jnp.concatenate([self.track_content(memory, tracks, gap), det_content], axis=1)
    ref = jnp.concatenate([tracks.ref, det_ref], axis=1)
    valid = jnp.concatenate([tracks.valid, jnp.ones(top.shape, bool)], axis=1)
    self_mask = nn.make_attention_mask(jnp.ones_like(valid), valid)
    all_logits, all_boxes = [], []
    for layer, class_head, box_head in zip(self.decoder, self.class_heads, self.box_heads):
      query_pos = self.query_pos(sine_embed(ref, self.d_model // 4))
      tgt = layer(tgt, query_pos, memory.features, memory.pos[None], self_mask)
      boxes = jax.nn.sigmoid(inverse_sigmoid(ref) + box_head(tgt).astype(jnp.float32))
      all_logits.append(class_head(tgt).astype(jnp.float32))
      all_boxes.append(boxes)
      ref = jax.lax.stop_gradient(boxes)
    if self.refine_points:
      all_boxes.append(self.box_refine(memory.fine, ref, tgt))
    return DecoderOutput(jnp.stack(all_logits), jnp.stack(all_boxes), tgt)

  def track_content(self, memory: Memory, tracks: TrackQueries, gap: jax.Array) -> jax.Array:
    """Decoder input [B, S, D] of the track queries: the carried state, the embedded frame gap,
    and (as a detect query's content is its proposal's encoder feature) the encoder feature of the
    cell under its last centre, so the query sees this frame where its object was."""
    cell = cell_under(tracks.ref, memory.features.shape[1])
    seen = jnp.take_along_axis(memory.features, cell[..., None], axis=1)
    content = (tracks.embed + self.motion_embed(motion_features(tracks, gap))
               + self.query_content_norm(self.query_content(seen)))
    return content * tracks.valid[..., None]

  def qim(self, hidden: jax.Array, valid: jax.Array) -> jax.Array:
    """Query interaction: updates the carried queries' states [B, S, D] (attention among live ones + FFN)."""
    mask = nn.make_attention_mask(jnp.ones_like(valid), valid)
    x = self.qim_norm1(hidden + self.qim_attn(hidden, hidden, hidden, mask=mask))
    return self.qim_norm2(x + self.qim_ffn(x)).astype(jnp.float32)


def carry_tracks(model: MOTR, params, out: DecoderOutput, tracks: TrackQueries, gap: jax.Array,
                 next_slots: jax.Array) -> TrackQueries:
  """Next frame's track queries: slot s continues query `next_slots[b, s]` of `out` (-1 = empty),
  from its last box, its state updated by QIM. (`tracks` and `gap` are what `out` was decoded
  with; a carried track no longer moves its reference by a measured velocity: that prior fed back
  on itself in long videos and was deleted, docs/history.md.)"""
  del tracks, gap
  valid = next_slots >= 0
  index = jnp.maximum(next_slots, 0)[..., None]
  hidden = jnp.take_along_axis(out.hidden, index, axis=1)
  ref = jax.lax.stop_gradient(jnp.take_along_axis(out.boxes[-1], index, axis=1))
  embed = model.apply(params, hidden, valid, method=MOTR.qim)
  embed = jnp.where(valid[..., None], embed, 0.0)
  ref = jnp.where(valid[..., None], ref, 0.5)
  return TrackQueries(embed, ref, valid)


def build_model(config) -> MOTR:
  """MOTR from the `model` section of a config."""
  m = config.model
  return MOTR(num_classes=m.num_classes, d_model=m.d_model, num_heads=m.num_heads, ffn_dim=m.ffn_dim,
              enc_layers=m.enc_layers, dec_layers=m.dec_layers, num_queries=m.num_queries,
              backbone_widths=tuple(m.backbone_widths), backbone_blocks=tuple(m.backbone_blocks),
              anchor_size=m.anchor_size, refine_points=m.refine_points, dtype=compute_dtype(m.dtype))


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str) -> Any:
  """The jnp type of `config.model.dtype`; UserError (one line) for another name."""
  if name not in DTYPES:
    raise UserError(f"config.model.dtype={name!r}: use one of {', '.join(DTYPES)}")
  return DTYPES[name]
