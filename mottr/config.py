"""The config schema: every key a model, its training and its tracker read, with its default.

`configs/` holds the recipes (each a `get_config()` that starts from this one, with the command
that runs it in its docstring); a checkpoint's config.json holds the same keys, so a model
carries its architecture, how it was trained and its tuned `tracker` thresholds (the one set of
defaults is `mottr.tracker.TrackerSettings`). Any key is changed from a command line with
`--config.a.b=v` (`mottr.config_overrides`).

Options measured as useless were deleted (docs/history.md, "Deleted options"): a saved config
that still holds one is read when it holds the "off" value (the key is dropped) and refused in
one line otherwise (`drop_deleted`); `--config.model.denoise=True` is an unknown key.
"""
import dataclasses
from typing import Any

import ml_collections

from mottr.schema import UserError
from mottr.tracker import TrackerSettings

# Deleted options and the value that meant "off"; keys whose value only mattered when their
# option was on map to ANY.
ANY = object()
DELETED: dict[str, Any] = {
    "model.denoise": False,
    "model.detached_births": False,
    "model.velocity_prior": False,
    "loss.dn_box_noise": ANY,
    "loss.dn_label_noise": ANY,
    "model.refine_passes": 1,
    "data.zoom_prob": 0.0,
    "data.zoom_range": ANY,
}


def get_config() -> ml_collections.ConfigDict:
  """Every key with its default (the defaults are the GPU/TPU recipe, configs/default.py)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.init_from = ""  # a workdir (or exported model) whose parameters start this run (stage 2 of a recipe)
  c.init_step = 0   # the checkpoint step of init_from that starts it (0: the latest)
  c.distributed = False  # call jax.distributed.initialize() (multi-host GPU clusters / TPU pods)

  c.model = ml_collections.ConfigDict(dict(
      num_classes=2, image_size=256, d_model=128, num_heads=8, ffn_dim=512, enc_layers=2, dec_layers=3,
      num_queries=16, num_slots=12, backbone_widths=(32, 48, 96, 192), backbone_blocks=(1, 1, 1),
      anchor_size=0.1,
      refine_points=0,        # > 0: refine every final box from the stride-8 map sampled on this many x this many points
      dtype="float32",        # compute type: "float32" or "bfloat16" (accelerators; parameters stay float32)
      snap_tracks=False))     # inference: track boxes snapped to the detections of a track-free decode (mottr/predictor.py)

  c.loss = ml_collections.ConfigDict(dict(
      focal_alpha=0.25, focal_gamma=2.0, cost_class=2.0, cost_l1=5.0, cost_giou=2.0,
      matcher="scipy",  # Hungarian solver, mottr.matching.SOLVERS: "optax" compiles into the step (cacheable)
      w_class=2.0, w_l1=5.0, w_giou=2.0, track_drop_prob=0.1, fp_insert_prob=0.3))

  c.data = ml_collections.ConfigDict(dict(
      synth_root="",           # challenge-layout root of synthetic data; "" = one generated into the workdir (data_prep.prepare)
      synth_frames=7200,       # frames of the generated train split when synth_root is ""
      synth_seed=1,            # seed of the generated data (tests/benchmarks use other seeds)
      real_root="",            # e.g. ../shared/stroma: real sparse frames (stride 10), train split only
      real_weight=0.25,        # sampling weight of real clips vs synthetic ones
      real_composite_prob=0.0,  # share of real clips made of two side by side (input.compose_columns)
      max_objects=12,
      strides=(1, 2, 3),       # random frame stride of synthetic clips
      augment=True,            # flip + JPEG on the host (input.flip_and_jpeg), the photometric rest in the step (mottr/augment.py)
      synth_box_pad_px=(0, 0),  # px per side (at 640 px) added to synthetic bolt / nut boxes: the real convention
      overlay_prob=0.0,        # share of clips with burned-in detector overlays drawn in (input.draw_overlays)
      overlay_style="palette",  # their look, input.OVERLAY_STYLES: "random" colours and boxes off the object
      workers=0))              # grain worker processes making batches ahead of the step (0: in the loop; each
                               # worker fills its own frame cache: 1.4 GB per 7200 frames at 256 px)

  # (steps, clip length): single-frame detection pre-training, then a clip-length curriculum.
  c.curriculum = ((20000, 1), (10000, 2), (10000, 3), (20000, 5))
  c.batch_size = 32

  c.optim = ml_collections.ConfigDict(dict(
      lr=4e-4, warmup_steps=1000, weight_decay=1e-4, clip_norm=0.1, min_lr_ratio=0.05,
      ema_decay=0.0))  # > 0: keep an exponential moving average of the parameters (mottr.train.EmaTrainState)

  c.log_every = 50
  c.checkpoint_every = 2000
  c.keep_checkpoints = 3
  c.eval_every = 5000
  c.eval_frames = 600      # frames of the val split used by the periodic validation

  # The crop refiner (mottr/model/crop_refiner.py): its architecture, the boxes it refines at
  # inference, and its training (mottr.train_refiner, which reads the data section's roots and padding).
  c.refiner = ml_collections.ConfigDict(dict(
      enabled=False,           # inference: refine the boxes with the model folder's refiner.msgpack
      crop_size=64, grow=1.6, widths=(16, 32, 48, 96), hidden=256,
      class_aware=False,       # told each box's class; also scores "an object of that class is here"
      rescore=0.0,             # class-aware inference: the decode's detect queries' scores times sigmoid(that logit) ** rescore
      min_score=0.3,           # boxes refined: max class probability at least this
      head="dense",            # "dense": edges regressed from the pooled features; "edges": per-edge distributions (docs/stage33.md)
      passes=1,                # inference: each box refined this many times, re-cut about the last refined box
      flip=False,              # inference: also refine the crops flipped left-right and average (twice the crops)
      steps=5000, batch_size=128, lr=1e-3, warmup_steps=200, weight_decay=1e-4,
      real_weight=0.6,         # share of crops from the real train frames (the rest: synthetic train frames)
      synth_every=6, synth_frames=1000,  # every 6th synthetic train frame, at most this many (host memory)
      centre_jitter=0.06, size_jitter=0.1, wide_prob=0.3,  # boxes moved by N(0, s) box sides, log size by N(0, s); x2 at wide_prob
      # class-aware training: crops given a box stretched over a touching neighbour (when the frame has
      # one), and negatives (background, or an object of the other class) for the score, weighted score_weight
      union_prob=0.25, negative_prob=0.2, score_weight=0.1,
      # and hard negatives: the false boxes (class probability >= hard_min_score) of the detector of the
      # model folder hard_negatives ("shipped": the shipped model) on the training frames
      hard_negative_prob=0.0, hard_negatives="shipped", hard_min_score=0.05,
      checkpoint_every=250))

  # Tracker and counting thresholds (mottr.tracker.TrackerSettings), exported with the model.
  c.tracker = ml_collections.ConfigDict(dataclasses.asdict(TrackerSettings()))
  return c


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def drop_deleted(saved: dict, source: str) -> dict:
  """`saved` (a config as nested dicts, e.g. a checkpoint's config.json) without the keys of
  deleted options; UserError (one line) when one of them is on."""
  flat = _flatten(saved)
  for key, off in DELETED.items():
    if key in flat and off is not ANY and flat[key] != off:
      raise UserError(f"{source}: {key}={flat[key]!r} was deleted from mottr (measured useless, "
                      "docs/history.md); this checkpoint needs an older mottr")
  out: dict = {}
  for key, value in flat.items():
    if key in DELETED:
      continue
    node = out
    *groups, leaf = key.split(".")
    for g in groups:
      node = node.setdefault(g, {})
    node[leaf] = value
  return out


def from_dict(saved: dict, source: str) -> ml_collections.ConfigDict:
  """The schema's config with a saved config's values (deleted options dropped, see
  `drop_deleted`); keys this version does not know are refused in one line."""
  config = get_config()
  values = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in _flatten(drop_deleted(saved, source)).items()}
  unknown = sorted(set(values) - set(_flatten(config.to_dict())))
  if unknown:
    raise UserError(f"{source}: config does not match this version of mottr (unknown key "
                    f"{unknown[0]}); retrain or use a matching checkpoint")
  try:
    config.update_from_flattened_dict(values)
  except (KeyError, AttributeError, TypeError) as e:
    raise UserError(f"{source}: config does not match this version of mottr ({e}); retrain or "
                    "use a matching checkpoint") from None
  return config
