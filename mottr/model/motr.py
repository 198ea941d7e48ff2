"""MOTR: a DETR-style detector whose decoder also carries track queries from frame to frame.

Per frame: backbone -> encoder over the stride-16 (or 32) feature map with 2D sine positions ->
encoder proposals (one anchor box per cell, class + box head) -> the top-`num_queries` proposals
become detect queries (content from their encoder feature, reference = proposal box) -> decoder
over [track queries ; detect queries] with iterative box refinement -> class/box heads per layer.
QIM turns the decoder outputs of the queries that go on into next frame's track queries.

Track queries carry a velocity (box centre per 1/30 s, measured from their last two boxes; none
yet for a track born in the previous frame) and every frame comes with its time gap from the
previous one (in 1/30 s): a track's reference box is moved by velocity x gap before decoding, and
the gap, that predicted move and whether a velocity is known are embedded into its content. So one
model serves any frame rate or training stride, and tells a just-born track (whose move it must
find in the image) from one whose move is predicted. Like a detect query, whose content is the
encoder feature of its proposal's cell, a track query adds the encoder feature of the cell under
its predicted centre: it sees the current frame where it expects its object.

With `denoise` (training only, DN-DETR), the decoder also takes one group of denoising queries:
ground-truth boxes with noise, whose content is the embedding of a (possibly flipped) class,
trained to reconstruct their object. The other queries cannot attend to them.
"""
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mottr.model.backbone import ResNetLite
from mottr.model.transformer import DecoderLayer, EncoderLayer, Mlp, grid_centres, sine_embed


def inverse_sigmoid(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  x = jnp.clip(x, eps, 1 - eps)
  return jnp.log(x / (1 - x))


class Memory(NamedTuple):
  """Encoder output of one frame (batched)."""
  features: jax.Array        # [B, HW, D]
  pos: jax.Array             # [HW, D]
  proposal_logits: jax.Array  # [B, HW, C]
  proposal_boxes: jax.Array  # [B, HW, 4] cxcywh


class TrackQueries(NamedTuple):
  embed: jax.Array     # [B, S, D]
  ref: jax.Array       # [B, S, 4] cxcywh: the box of the previous frame
  velocity: jax.Array  # [B, S, 2] box centre motion per 1/30 s (0 where not moving)
  moving: jax.Array    # [B, S] bool: velocity measured (False for a track born last frame)
  valid: jax.Array     # [B, S] bool


class DenoiseQueries(NamedTuple):
  """Noised ground truth decoded beside the other queries in training (`mottr.denoising`)."""
  labels: jax.Array  # [B, K] int32 class index, some flipped
  boxes: jax.Array   # [B, K, 4] cxcywh, jittered
  valid: jax.Array   # [B, K] bool (padding is False)


class DecoderOutput(NamedTuple):
  logits: jax.Array  # [L, B, S+Q(+K), C]   every decoder layer (the last one is the prediction)
  boxes: jax.Array   # [L, B, S+Q(+K), 4]   (+K: denoising queries, when given)
  hidden: jax.Array  # [B, S+Q(+K), D]      last layer's query states, input of QIM


def empty_tracks(batch: int, slots: int, d_model: int) -> TrackQueries:
  return TrackQueries(jnp.zeros((batch, slots, d_model), jnp.float32),
                      jnp.full((batch, slots, 4), 0.5, jnp.float32), jnp.zeros((batch, slots, 2), jnp.float32),
                      jnp.zeros((batch, slots), bool), jnp.zeros((batch, slots), bool))


def motion_features(tracks: TrackQueries, gap: jax.Array) -> jax.Array:
  """[B, S, 5]: log gap, gap / 10, predicted centre move x 10, velocity known."""
  b, s = tracks.valid.shape
  per_clip = jnp.broadcast_to(jnp.stack([jnp.log(gap), gap / 10.0], -1)[:, None], (b, s, 2))
  move = 10.0 * tracks.velocity * gap[:, None, None]
  return jnp.concatenate([per_clip, move, tracks.moving[..., None].astype(jnp.float32)], -1)


def cell_under(boxes: jax.Array, cells: int) -> jax.Array:
  """Row-major index [...] of the cell of a square grid of `cells` cells under each box centre."""
  side = int(round(cells**0.5))
  assert side * side == cells, f"{cells} cells do not form a square grid"
  col = jnp.clip(jnp.floor(boxes[..., 0] * side), 0, side - 1).astype(jnp.int32)
  row = jnp.clip(jnp.floor(boxes[..., 1] * side), 0, side - 1).astype(jnp.int32)
  return row * side + col


def predicted_ref(tracks: TrackQueries, gap: jax.Array) -> jax.Array:
  """Track reference boxes [B, S, 4] moved by velocity x gap (gap [B], in 1/30 s)."""
  return tracks.ref.at[..., :2].add(tracks.velocity * gap[:, None, None])


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
  denoise: bool = False

  def setup(self):
    d = self.d_model
    self.backbone = ResNetLite(self.backbone_widths, self.backbone_blocks)
    self.input_proj = nn.Dense(d)
    self.input_norm = nn.GroupNorm(num_groups=8)
    self.encoder = [EncoderLayer(d, self.num_heads, self.ffn_dim) for _ in range(self.enc_layers)]
    self.proposal_class = nn.Dense(self.num_classes, bias_init=nn.initializers.constant(-4.6))
    self.proposal_box = Mlp(d, 4, 3)
    self.query_content = nn.Dense(d)
    self.query_content_norm = nn.LayerNorm()
    self.query_pos = Mlp(d, d)
    self.decoder = [DecoderLayer(d, self.num_heads, self.ffn_dim) for _ in range(self.dec_layers)]
    self.class_heads = [nn.Dense(self.num_classes, bias_init=nn.initializers.constant(-4.6))
                        for _ in range(self.dec_layers)]
    self.box_heads = [Mlp(d, 4, 3, name=f"box_head_{i}") for i in range(self.dec_layers)]
    self.qim_attn = nn.MultiHeadDotProductAttention(self.num_heads)
    self.qim_norm1 = nn.LayerNorm()
    self.qim_ffn = Mlp(self.ffn_dim, d)
    self.qim_norm2 = nn.LayerNorm()
    self.motion_embed = nn.Dense(d)
    if self.denoise:
      self.denoise_label = nn.Embed(self.num_classes, d)

  def __call__(self, images: jax.Array, tracks: TrackQueries) -> tuple[Memory, DecoderOutput, jax.Array]:
    """Touches every parameter (used by init): one frame and a QIM update of all slots."""
    memory = self.encode(images)
    b = images.shape[0]
    dn = (DenoiseQueries(jnp.zeros((b, 1), jnp.int32), jnp.full((b, 1, 4), 0.5), jnp.ones((b, 1), bool))
          if self.denoise else None)
    out = self.decode(memory, tracks, jnp.ones((b,), jnp.float32), dn)
    slots = tracks.valid.shape[1]
    return memory, out, self.qim(out.hidden[:, :slots], tracks.valid)

  def encode(self, images: jax.Array) -> Memory:
    """uint8 images [B, H, W, 3] -> encoder memory and proposals."""
    x = (images.astype(jnp.float32) / 255.0 - 0.45) / 0.25
    feat = self.backbone(x)
    b, h, w, _ = feat.shape
    feat = self.input_norm(self.input_proj(feat)).reshape(b, h * w, self.d_model)
    centres = grid_centres(h, w)
    pos = sine_embed(centres, self.d_model // 2)
    for layer in self.encoder:
      feat = layer(feat, pos[None])
    anchors = jnp.concatenate([centres, jnp.full_like(centres, self.anchor_size)], axis=-1)
    boxes = jax.nn.sigmoid(inverse_sigmoid(anchors)[None] + self.proposal_box(feat))
    return Memory(feat, pos, self.proposal_class(feat), boxes)

  def decode(self, memory: Memory, tracks: TrackQueries, gap: jax.Array,
             dn: DenoiseQueries | None = None) -> DecoderOutput:
    """Decodes [track queries ; top-k proposals as detect queries (; denoising queries)] against one
    frame's memory; `gap` [B] is the time since the tracks' frame in 1/30 s."""
    scores = memory.proposal_logits.max(-1)
    _, top = jax.lax.top_k(scores, self.num_queries)                       # [B, Q]
    det_feat = jnp.take_along_axis(memory.features, top[..., None], axis=1)
    det_ref = jax.lax.stop_gradient(jnp.take_along_axis(memory.proposal_boxes, top[..., None], axis=1))
    det_content = self.query_content_norm(self.query_content(det_feat))
    track_ref = predicted_ref(tracks, gap)
    tgt = jnp.concatenate([self.track_content(memory, tracks, gap, track_ref), det_content], axis=1)
    ref = jnp.concatenate([track_ref, det_ref], axis=1)
    valid = jnp.concatenate([tracks.valid, jnp.ones(top.shape, bool)], axis=1)
    if dn is not None:
      tgt = jnp.concatenate([tgt, self.denoise_label(dn.labels) * dn.valid[..., None]], axis=1)
      ref = jnp.concatenate([ref, dn.boxes], axis=1)
      valid = jnp.concatenate([valid, dn.valid], axis=1)
    self_mask = nn.make_attention_mask(jnp.ones_like(valid), valid)
    if dn is not None:  # track and detect queries must not see the (ground-truth) denoising queries
      main = tracks.valid.shape[1] + self.num_queries
      index = jnp.arange(valid.shape[1])
      self_mask = jnp.where((index[:, None] < main) & (index[None, :] >= main), 0.0, self_mask)
    all_logits, all_boxes = [], []
    for layer, class_head, box_head in zip(self.decoder, self.class_heads, self.box_heads):
      query_pos = self.query_pos(sine_embed(ref, self.d_model // 4))
      tgt = layer(tgt, query_pos, memory.features, memory.pos[None], self_mask)
      boxes = jax.nn.sigmoid(inverse_sigmoid(ref) + box_head(tgt))
      all_logits.append(class_head(tgt))
      all_boxes.append(boxes)
      ref = jax.lax.stop_gradient(boxes)
    return DecoderOutput(jnp.stack(all_logits), jnp.stack(all_boxes), tgt)

  def track_content(self, memory: Memory, tracks: TrackQueries, gap: jax.Array, ref: jax.Array) -> jax.Array:
    """Decoder input [B, S, D] of the track queries: the carried state, the embedded motion, and
    (as a detect query's content is its proposal's encoder feature) the encoder feature of the cell
    under the predicted centre `ref` (`predicted_ref`), so the query sees this frame where it
    expects its object."""
    cell = cell_under(ref, memory.features.shape[1])
    seen = jnp.take_along_axis(memory.features, cell[..., None], axis=1)
    content = (tracks.embed + self.motion_embed(motion_features(tracks, gap))
               + self.query_content_norm(self.query_content(seen)))
    return content * tracks.valid[..., None]

  def qim(self, hidden: jax.Array, valid: jax.Array) -> jax.Array:
    """Query interaction: updates the carried queries' states [B, S, D] (attention among live ones + FFN)."""
    mask = nn.make_attention_mask(jnp.ones_like(valid), valid)
    x = self.qim_norm1(hidden + self.qim_attn(hidden, hidden, hidden, mask=mask))
    return self.qim_norm2(x + self.qim_ffn(x))


def carry_tracks(model: MOTR, params, out: DecoderOutput, tracks: TrackQueries, gap: jax.Array,
                 next_slots: jax.Array, velocity_prior: bool = True) -> TrackQueries:
  """Next frame's track queries: slot s continues query `next_slots[b, s]` of `out` (-1 = empty).

  `tracks` and `gap` [B] are what `out` was decoded with: a continuing track's velocity is its
  box centre's move since then divided by the gap; a new track starts at rest. Without
  `velocity_prior` every track is carried as if just born (no velocity).
  """
  valid = next_slots >= 0
  index = jnp.maximum(next_slots, 0)[..., None]
  hidden = jnp.take_along_axis(out.hidden, index, axis=1)
  ref = jax.lax.stop_gradient(jnp.take_along_axis(out.boxes[-1], index, axis=1))
  slots = tracks.valid.shape[1]
  continuing = valid & (next_slots < slots) & velocity_prior
  previous = jnp.take_along_axis(tracks.ref, jnp.minimum(index, slots - 1), axis=1)
  velocity = (ref[..., :2] - previous[..., :2]) / gap[:, None, None]
  embed = model.apply(params, hidden, valid, method=MOTR.qim)
  embed = jnp.where(valid[..., None], embed, 0.0)
  ref = jnp.where(valid[..., None], ref, 0.5)
  velocity = jnp.where(continuing[..., None], velocity, 0.0)
  return TrackQueries(embed, ref, velocity, continuing, valid)


def build_model(config) -> MOTR:
  """MOTR from the `model` section of a config."""
  m = config.model
  return MOTR(num_classes=m.num_classes, d_model=m.d_model, num_heads=m.num_heads, ffn_dim=m.ffn_dim,
              enc_layers=m.enc_layers, dec_layers=m.dec_layers, num_queries=m.num_queries,
              backbone_widths=tuple(m.backbone_widths), backbone_blocks=tuple(m.backbone_blocks),
              anchor_size=m.anchor_size, denoise=bool(m.denoise))
