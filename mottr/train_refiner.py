"""Trains the crop refiner (`mottr.model.crop_refiner`) on truth boxes moved at random.

  python -m mottr.train_refiner --config=configs/refiner.py --workdir=workdirs/refiner
  python -m mottr.export --workdir mottr/assets/shipped --refiner workdirs/refiner --out DIR

Each sample is one truth box of a real train frame (`real_root/frames/train`, the annotators'
boxes) or of a synthetic train frame (`synth_root`, boxes padded by `data.synth_box_pad_px` to the
real convention), moved by the detector's kind of error (centre by N(0, centre_jitter) box sides,
log size by N(0, size_jitter); twice that at `wide_prob`), cut out of the full-resolution frame
around the moved box, flipped left-right at random and its light scaled (with `data.augment`; the
frame first gets another tracker's boxes and tags drawn in at `data.overlay_prob`, as the dense clip
has them). The target is the truth's edges in the crop. A class-aware refiner
(`refiner.class_aware`) is told each box's class; at `union_prob` its box is stretched over a
touching neighbour (and must shrink back to its own object), at `negative_prob` it is a
negative (the background, or an object told as the other class) for its score, and at
`hard_negative_prob` it is one of the detector's own false boxes on the training frames (the
model folder `hard_negatives`, its detect queries scoring at least `hard_min_score`). L1 loss (plus
`score_weight` times the score's binary cross-entropy), AdamW. The workdir holds `config.json`,
`refiner.msgpack` (the parameters, what a model folder ships) and `refiner_state.msgpack` (step,
parameters, optimiser: a run resumes from it, bit-exact, as the batch of each step depends only on
the seed and the step). Where `real_root/frames/val` exists its boxes are the validation, logged at
every checkpoint: mean IoU of the moved (and stretched) boxes and of the refined ones, and how often
the score ranks a box's own class above the other.
"""
import collections
import functools
import json
import os
import sys
import time

from absl import app
from absl import flags
import cv2
import flax
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from mottr import boxes as boxes_lib
from mottr import cli
from mottr import compile_cache
from mottr import input as input_lib
from mottr import schema
from mottr import sources
from mottr.errors import parse_flags
from mottr.model import crop_refiner
from mottr.schema import UserError, run_cli

Frames = list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (RGB frame, xyxy pixel truth boxes [n, 4], classes [n])


def real_set(real_root: str, split: str) -> Frames:
  """The labelled real sparse frames of `real_root/frames/split`."""
  from data_prep import real_frames  # pylint: disable=g-import-not-at-top  (the data layer: training only)
  out = []
  for frame in real_frames.read_frames(os.path.join(real_root, "frames"), split):
    bgr = cv2.imread(frame.image_path)
    if bgr is None:
      raise UserError(f"{frame.image_path}: not a readable image")
    h, w = bgr.shape[:2]
    out.append((bgr[..., ::-1].copy(), boxes_lib.cxcywh_to_xyxy(frame.boxes) * np.float32([w, h, w, h]),
                frame.labels.astype(np.int32)))
  return out


def synth_set(root: str, every: int, limit: int, pad_px: tuple[float, float]) -> Frames:
  """Every `every`-th annotated frame of a challenge root's train split (at most `limit`), its
  boxes padded by `pad_px` (bolt, nut) per side and clipped to the frame."""
  coco = schema.load_annotations(root, "train")
  by_image = collections.defaultdict(list)
  for a in coco["annotations"]:
    x, y, w, h = a["bbox"]
    pad = pad_px[a["category_id"] - 1]
    by_image[a["image_id"]].append([x - pad, y - pad, x + w + pad, y + h + pad, a["category_id"] - 1])
  source = sources.open_source(schema.video_path(root, "train"))
  out = []
  for index, bgr in source.frames:
    if len(out) >= limit:
      break
    boxes = by_image.get(index + 1)
    if index % every or not boxes:
      continue
    h, w = bgr.shape[:2]
    boxes = np.float32(boxes)
    out.append((bgr[..., ::-1].copy(), np.clip(boxes[:, :4], 0, [w, h, w, h]).astype(np.float32),
                boxes[:, 4].astype(np.int32)))
  return out


def moved(box: np.ndarray, settings, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
  """`box` (xyxy) moved as a detector errs: centre and log size shifted at random (`scale` times)."""
  scale *= 2.0 if rng.random() < settings.wide_prob else 1.0
  size = box[2:] - box[:2]
  centre = (box[:2] + box[2:]) / 2 + rng.normal(0, settings.centre_jitter * scale, 2) * size
  size = size * np.exp(rng.normal(0, settings.size_jitter * scale, 2))
  return np.concatenate([centre - size / 2, centre + size / 2]).astype(np.float32)


def with_overlays(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, style: str) -> np.ndarray:
  """`image` with another tracker's boxes and tags drawn around its objects (`mottr.input.draw_overlays`)."""
  h, w = image.shape[:2]
  cxcywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1) / [w, h, w, h]
  clip = {"image": image[None], "mask": np.ones((1, len(boxes)), bool), "boxes": cxcywh[None]}
  return input_lib.draw_overlays(clip, rng, style)["image"][0]


def touching_pairs(frames: Frames, margin: float = 0.25) -> list[tuple[int, int, int]]:
  """(frame, box, neighbour) of every two boxes of a frame no further apart, along x and along y,
  than `margin` times the first box's shorter side: those a detector's box may stretch over."""
  pairs = []
  for f, (_, boxes, _) in enumerate(frames):
    for i, a in enumerate(boxes):
      limit = margin * min(a[2] - a[0], a[3] - a[1])
      for j, b in enumerate(boxes):
        gap = np.maximum(np.maximum(a[:2], b[:2]) - np.minimum(a[2:], b[2:]), 0)
        if i != j and gap.max() <= limit:
          pairs.append((f, i, j))
  return pairs


def stretched(box: np.ndarray, neighbour: np.ndarray, same_class: bool, settings,
              rng: np.random.Generator) -> np.ndarray:
  """A detector's box over `box` stretched toward a touching `neighbour`: their hull, with the
  neighbour pulled part of the way toward `box` (further for one of the same class, so that the
  box stays the larger part), moved a little."""
  pull = rng.uniform(0.3, 0.7) if same_class else rng.uniform(0.0, 0.4)
  part = neighbour + pull * (box - neighbour)
  hull = np.concatenate([np.minimum(box[:2], part[:2]), np.maximum(box[2:], part[2:])])
  return moved(hull, settings, rng, scale=0.5)


def background(boxes: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
  """A box the size of one of `boxes` placed at random in the frame, overlapping none of them much."""
  for _ in range(20):
    size = boxes[rng.integers(len(boxes))]
    size = size[2:] - size[:2]
    centre = rng.uniform([0, 0], [width, height])
    box = np.concatenate([centre - size / 2, centre + size / 2]).astype(np.float32)
    if boxes_lib.pairwise_iou(box[None], boxes)[0].max() < 0.1:
      break
  return box


def detector_negatives(frames: Frames, model_dir: str, min_score: float,
                       edge_px: float = 8.0) -> list[tuple[int, np.ndarray, int]]:
  """(frame, xyxy box, class) of every detect query of the model in `model_dir` ("shipped": the
  shipped model), run on each frame alone (no track queries), whose class probability is at least
  `min_score` and which overlaps no truth box (IoU < 0.1): the detector's own false boxes, such as
  the hall's bracing and pillars, as hard negatives for the refiner's score. Boxes within `edge_px`
  of the top or bottom edge are left out: there a sliver of an object entering or leaving may be
  unannotated, and the refiner must keep those that are (objects do not cross the side edges)."""
  from mottr.predictor import load_predictor  # pylint: disable=g-import-not-at-top  (the full model: only here)
  predictor = load_predictor(None if model_dir == "shipped" else model_dir)
  size, out = predictor.input_size, []
  for f, (image, truth, _) in enumerate(frames):
    h, w = image.shape[:2]
    predictor.reset()
    found = predictor.step(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    detect = slice(found.num_slots, None)
    boxes = boxes_lib.cxcywh_to_xyxy(np.asarray(found.boxes[detect], np.float32)) * np.float32([w, h, w, h])
    keep = (found.scores[detect] >= min_score) & (boxes[:, 1] > edge_px) & (boxes[:, 3] < h - edge_px)
    if len(truth):
      keep &= boxes_lib.pairwise_iou(boxes, truth)[0].max(1) < 0.1
    out += [(f, box, int(label)) for box, label in zip(boxes[keep], found.labels[detect][keep])]
  return out


def sample(sets: list[Frames], weights: np.ndarray, settings, rng: np.random.Generator, n: int,
           augment: bool = True, overlay_prob: float = 0.0, overlay_style: str = "palette",
           pairs: list[list[tuple[int, int, int]]] | None = None,
           hard: list[list[tuple[int, np.ndarray, int]]] | None = None) -> tuple[np.ndarray, ...]:
  """n training crops [n, S, S, 3] uint8, the given boxes' edges and the truth's [n, 4] (crop
  coordinates), the classes the refiner is told [n] and whether an object of that class is there
  [n]; at `overlay_prob` the frame first gets burned-in overlays like the dense clip's. A
  class-aware refiner also gets boxes stretched over a touching neighbour (`pairs[set]`, from
  `touching_pairs`), negatives, and at `hard_negative_prob` the detector's own false boxes
  (`hard[set]`, from `detector_negatives`)."""
  size = settings.crop_size
  crops = np.zeros((n, size, size, 3), np.uint8)
  given, truth = np.zeros((n, 4), np.float32), np.zeros((n, 4), np.float32)
  labels, positive = np.zeros(n, np.int32), np.ones(n, np.float32)
  for i in range(n):
    k = rng.choice(len(sets), p=weights)
    frames, kind = sets[k], rng.random()
    if not settings.class_aware:
      kind = 1.0
    if kind < settings.hard_negative_prob and hard and hard[k]:
      f, box, labels[i] = hard[k][rng.integers(len(hard[k]))]
      image, boxes, _ = frames[f]
      start, positive[i] = moved(box, settings, rng, scale=0.5), 0.0
    elif settings.negative_prob <= kind - settings.hard_negative_prob < settings.negative_prob + settings.union_prob \
        and pairs[k]:
      f, b, nb = pairs[k][rng.integers(len(pairs[k]))]
      image, boxes, classes = frames[f]
      box, labels[i] = boxes[b], classes[b]
      start = stretched(box, boxes[nb], classes[b] == classes[nb], settings, rng)
    else:
      image, boxes, classes = frames[rng.integers(len(frames))]
      while not len(boxes):
        image, boxes, classes = frames[rng.integers(len(frames))]
      b = rng.integers(len(boxes))
      box, labels[i] = boxes[b], classes[b]
      start = moved(box, settings, rng)
      if kind - settings.hard_negative_prob < settings.negative_prob:
        positive[i] = 0.0
        if rng.random() < 0.5:  # an object told as the other class
          labels[i] = 1 - labels[i]
        else:  # the background
          start, labels[i] = background(boxes, image.shape[1], image.shape[0], rng), rng.integers(2)
    if augment and rng.random() < overlay_prob:
      image = with_overlays(image, boxes, rng, overlay_style)
    region = crop_refiner.crop_regions(start[None], settings.grow)
    crop = crop_refiner.cut(image, region[0], size)
    g, t = crop_refiner.to_crop(start[None], region)[0], crop_refiner.to_crop(box[None], region)[0]
    if augment and rng.random() < 0.5:
      crop, g, t = crop[:, ::-1], crop_refiner.mirror(g), crop_refiner.mirror(t)
    if augment:
      crop = np.clip(crop * rng.uniform(0.6, 1.4) + rng.normal(0, 8), 0, 255)
    crops[i], given[i], truth[i] = crop, g, t
  return crops, given, truth, labels, positive


def validate(apply, params, frames: Frames, settings, seed: int,
             hard: list[tuple[int, np.ndarray, int]] = ()) -> dict[str, float]:
  """Mean IoU with the truth of the moved boxes and of their refined ones, on every box of `frames`;
  for a class-aware refiner also of boxes stretched over every touching neighbour, the share of
  boxes whose score ranks above the same crop told as the other class, the share of moved boxes
  it keeps (logit > 0) and of the detector's false boxes `hard` (`detector_negatives`) it rejects."""
  rng = np.random.default_rng([seed, 1 << 30])
  kinds = collections.defaultdict(list)

  def run(name, image, starts, boxes, labels):
    regions = crop_refiner.crop_regions(starts, settings.grow)
    crops = np.stack([crop_refiner.cut(image, r, settings.crop_size) for r in regions])
    edges = crop_refiner.to_crop(starts, regions)
    out, logits = apply(params, jnp.asarray(crops), jnp.asarray(edges), jnp.asarray(labels))
    if boxes is not None:
      kinds[name + " before"].append(np.diagonal(boxes_lib.pairwise_iou(starts, boxes)[0]))
      kinds[name + " after"].append(np.diagonal(boxes_lib.pairwise_iou(
          crop_refiner.from_crop(np.asarray(out), regions), boxes)[0]))
    if logits is not None and name == "moved":
      _, other = apply(params, jnp.asarray(crops), jnp.asarray(edges), jnp.asarray(1 - labels))
      kinds["class ranked"].append(np.asarray(logits) > np.asarray(other))
      kinds["kept"].append(np.asarray(logits) > 0)
    return logits

  for image, boxes, labels in frames:
    if len(boxes):
      run("moved", image, np.stack([moved(b, settings, rng) for b in boxes]), boxes, labels)
  if settings.class_aware:
    for f, b, nb in touching_pairs(frames):
      image, boxes, labels = frames[f]
      start = stretched(boxes[b], boxes[nb], labels[b] == labels[nb], settings, rng)
      run("stretched", image, start[None], boxes[b][None], labels[b][None])
  for f, box, label in hard:
    logits = run("hard", frames[f][0], box[None], None, np.int32([label]))
    kinds["rejected"].append(np.asarray(logits) < 0)
  return {k: float(np.concatenate(v).mean()) for k, v in kinds.items()}


def describe(means: dict[str, float]) -> str:
  """A log line of `validate`'s measures."""
  line = f"real val mean IoU {means['moved before']:.3f} -> {means['moved after']:.3f}"
  if "stretched before" in means:
    line += f", stretched {means['stretched before']:.3f} -> {means['stretched after']:.3f}"
  if "class ranked" in means:
    line += f", class ranked {means['class ranked']:.3f}, kept {means['kept']:.3f}"
  if "rejected" in means:
    line += f", false boxes rejected {means['rejected']:.3f}"
  return line


def _write(path: str, data: bytes) -> None:
  with open(path + ".tmp", "wb") as f:
    f.write(data)
  os.replace(path + ".tmp", path)


def train_refiner(config: ml_collections.ConfigDict, workdir: str, stop_at: int | None = None,
                  log=functools.partial(print, flush=True)):
  """Trains (or resumes) the refiner of `config.refiner` in `workdir` up to its last step (or
  checkpointed `stop_at`, as if stopped there); returns its parameters."""
  settings, data = config.refiner, config.data
  if not (data.real_root or data.synth_root):
    raise UserError("the refiner trains on truth boxes: pass --config.data.real_root (e.g. ../shared/stroma) "
                    "and/or --config.data.synth_root (a challenge-layout root)")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise UserError(f"--workdir {workdir}: cannot be made a folder ({e.strerror}); pass another") from None
  sets, weights = [], []
  if data.real_root:
    sets.append(real_set(data.real_root, "train"))
    weights.append(settings.real_weight)
  if data.synth_root:
    sets.append(synth_set(data.synth_root, settings.synth_every, settings.synth_frames, tuple(data.synth_box_pad_px)))
    weights.append(1.0 - settings.real_weight if data.real_root else 1.0)
  weights = np.array(weights) / np.sum(weights)
  val_dir = os.path.join(data.real_root, "frames", "val") if data.real_root else ""
  val = real_set(data.real_root, "val") if val_dir and os.path.isdir(val_dir) else []

  hard, val_hard = [[] for _ in sets], []
  if settings.class_aware and settings.hard_negative_prob:
    hard = [detector_negatives(frames, settings.hard_negatives, settings.hard_min_score) for frames in sets]
    val_hard = detector_negatives(val, settings.hard_negatives, settings.hard_min_score)
    log(f"hard negatives of {settings.hard_negatives}: {[len(h) for h in hard]} (train sets), {len(val_hard)} (val)")

  model = crop_refiner.build_refiner(settings)
  size = settings.crop_size
  params = crop_refiner.init_params(model, size, config.seed)
  pairs = [touching_pairs(frames) for frames in sets]
  schedule = optax.warmup_cosine_decay_schedule(0.0, settings.lr, min(settings.warmup_steps, settings.steps // 2),
                                                max(settings.steps, 2), settings.lr * 0.01)
  optimizer = optax.adamw(schedule, weight_decay=settings.weight_decay)
  state = {"step": 0, "params": params, "opt_state": optimizer.init(params)}
  state_path = os.path.join(workdir, "refiner_state.msgpack")
  if os.path.isfile(state_path):
    with open(state_path, "rb") as f:
      state = flax.serialization.from_bytes(state, f.read())
    log(f"resumed at step {int(state['step'])}")
  saved = dict(config.to_dict(), refiner=dict(config.refiner.to_dict(), enabled=True))
  _write(os.path.join(workdir, "config.json"), json.dumps(saved, indent=1).encode())

  def loss_fn(p, crops, given, truth, labels, positive):
    edges, logits = model.apply(p, crops, given, labels)
    loss = (jnp.abs(edges - truth).mean(1) * positive).sum() / jnp.maximum(positive.sum(), 1.0)
    if logits is None:
      return loss
    return loss + settings.score_weight * optax.sigmoid_binary_cross_entropy(logits, positive).mean()

  def train_step(p, opt_state, *batch):
    loss, grads = jax.value_and_grad(loss_fn)(p, *batch)
    updates, opt_state = optimizer.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state, loss

  train_step = jax.jit(train_step, donate_argnums=(0, 1))
  apply = jax.jit(model.apply)
  params, opt_state, start = state["params"], state["opt_state"], int(state["step"])
  losses, t0 = [], time.time()
  end = settings.steps if stop_at is None else min(stop_at, settings.steps)
  for step in range(start + 1, end + 1):
    batch = sample(sets, weights, settings, np.random.default_rng([config.seed, step]), settings.batch_size,
                   data.augment, data.overlay_prob, data.overlay_style, pairs, hard)
    params, opt_state, loss = train_step(params, opt_state, *map(jnp.asarray, batch))
    losses.append(float(loss))
    if step % settings.checkpoint_every == 0 or step == end:
      state = {"step": step, "params": params, "opt_state": opt_state}
      _write(state_path, flax.serialization.to_bytes(state))
      _write(os.path.join(workdir, "refiner.msgpack"), flax.serialization.to_bytes(params))
      line = f"step {step}/{settings.steps} loss {np.mean(losses):.4f} {(step - start) / (time.time() - t0):.2f} steps/s"
      if val:
        line += " | " + describe(validate(apply, params, val, settings, config.seed, val_hard))
      log(line)
      losses = []
  return params


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}; use --config.x=v for overrides")
  try:
    config = flags.FLAGS.config
    config.get("refiner")
  except OSError as e:
    raise UserError(f"--config: cannot load the config file ({str(e).strip().splitlines()[-1]})") from None
  cli.quiet_logging()
  compile_cache.enable()
  train_refiner(config, flags.FLAGS.workdir)


def run_main() -> None:
  """The program (`python -m mottr.train_refiner`)."""
  import configs  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file("config", os.path.join(os.path.dirname(configs.__file__), "refiner.py"),
                                  "Refiner configuration (configs/refiner.py).", lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory for the refiner's parameters and state.", required=True)
  if not getattr(sys.modules["__main__"], "__doc__", None):
    sys.modules["__main__"].__doc__ = __doc__
  app.run(run_cli(main), flags_parser=parse_flags)


if __name__ == "__main__":
  run_main()
