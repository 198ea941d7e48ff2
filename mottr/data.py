"""Training data: challenge-layout roots -> prepared TFDS datasets -> clip batches by step.

The synthetic root is `config.data.synth_root`, or, when that is empty, the one generated into
`workdir/data/synth` (train + val). This module only opens prepared data: `data_prep.prepare` (which
`python -m mottr.train` runs first) generates that root and builds the records into `workdir/data/tfds`.
The real sparse frames (`config.data.real_root`, stride 10) join with weight
`config.data.real_weight`, train split only; a share `config.data.real_composite_prob` of their clips
are two real clips side by side (`input.compose_columns`). Batches are a pure function of the global step
(`batch(step)`), so a resumed run sees exactly the batches an uninterrupted one would. Frames are
decoded once into host memory per source (`input.FrameCache`); batches carry the host part of the
augmentation (flip, JPEG) and the train step adds the photometric part (`mottr.augment`).
"""
import os
from typing import Iterator

from absl import flags
import grain
import numpy as np

from mottr import input as clip_input
from mottr import schema
from mottr.schema import UserError


PREPARE_HINT = "prepare it with python -m mottr.train (it prepares before training) or data_prep.prepare.prepare"


def synth_root(config, workdir: str) -> str:
  """The synthetic root to train and validate on: config.data.synth_root, else the workdir's generated one."""
  root = config.data.synth_root or os.path.join(workdir, "data", "synth")
  if not os.path.isfile(schema.annotation_path(root, "train")):
    raise UserError(f"{root}: no annotations/instances_train.json; {PREPARE_HINT}")
  return root


def prepared_source(data_dir: str, split: str, image_size: int) -> clip_input.FrameCache:
  """The prepared `stroma_clips` records of a source at the model's resolution, with their frames
  decoded into host memory (`input.FrameCache`)."""
  try:
    source = clip_input.open_data_source(data_dir, split, f"r{image_size}")
  except UserError:
    raise UserError(f"{data_dir}: no prepared r{image_size} records; {PREPARE_HINT}") from None
  return clip_input.FrameCache(source, image_size)


def total_steps(config) -> int:
  return int(sum(steps for steps, _ in config.curriculum))


def stage_at(config, step: int) -> tuple[int, int, int]:
  """(stage index, clip length, first step of the stage) of a global step of the curriculum."""
  start = 0
  for i, (steps, clip_len) in enumerate(config.curriculum):
    if step < start + steps:
      return i, int(clip_len), start
    start += steps
  raise ValueError(f"step {step} is past the curriculum ({start} steps)")


class TrainData:
  """Clip batches for every step of `config.curriculum`, mixed from synthetic and real sources."""

  def __init__(self, config, workdir: str):
    self.config = config
    size = config.model.image_size
    data_dir = os.path.join(workdir, "data", "tfds")
    synth_pad = tuple(px / schema.WIDTH for px in config.data.synth_box_pad_px)
    self.sources = [(prepared_source(os.path.join(data_dir, "synth"), "train", size),
                     tuple(config.data.strides), 1.0, synth_pad, 0.0)]
    if config.data.real_root:
      real = prepared_source(os.path.join(data_dir, "real"), "train", size)
      self.sources.append((real, (1,), config.data.real_weight, (0.0, 0.0), config.data.real_composite_prob))
    self._stages: dict[int, grain.MapDataset] = {}

  def _stage(self, index: int, clip_len: int) -> grain.MapDataset:
    if index not in self._stages:
      c = self.config
      clips = [clip_input.make_clips(source, clip_len=clip_len, strides=strides, max_objects=c.data.max_objects,
                                     seed=c.seed * 1000 + index * 10 + k, augment=c.data.augment,
                                     image_size=c.model.image_size, box_pad=pad,
                                     overlay_prob=c.data.overlay_prob, overlay_style=c.data.overlay_style,
                                     composite_prob=composite)
               for k, (source, strides, _, pad, composite) in enumerate(self.sources)]
      weights = [source[2] for source in self.sources]
      self._stages[index] = clip_input.mix_clip_datasets(clips, weights, c.batch_size)
    return self._stages[index]

  def batch(self, step: int) -> dict[str, np.ndarray]:
    index, clip_len, start = stage_at(self.config, step)
    return _model_inputs(self._stage(index, clip_len)[step - start])

  def batches(self, start: int, stop: int, workers: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """`batch(step)` for step = start .. stop-1, made ahead by `workers` grain processes (0: here,
    on demand). The same batches either way: each is still a function of its step alone."""
    step = start
    while step < stop:
      index, clip_len, first = stage_at(self.config, step)
      end = min(stop, first + int(self.config.curriculum[index][0]))
      if workers <= 0:
        for s in range(step, end):
          yield self.batch(s)
      else:
        ds = self._stage(index, clip_len).slice(slice(step - first, end - first)).map(_model_inputs)
        if not flags.FLAGS.is_parsed():  # grain's workers read its absl flags (defaults outside an absl app)
          flags.FLAGS.mark_as_parsed()
        options = grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=4)
        yield from ds.to_iter_dataset().mp_prefetch(options)
      step = end


def _model_inputs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {k: batch[k] for k in ("image", "boxes", "labels", "mask", "gap")}
