"""Prepares a training workdir's data: the synthetic root (generated when the config names none) and
the TFDS `stroma_clips` records of every training source at the model's resolution.

`python -m mottr.train` (the CLI) calls `prepare` before training; tests and benchmarks call it
themselves. The training library (`mottr.data`) only opens what this wrote: data generation lives
here and in the CLIs, never in the library. Layout under the workdir: `data/synth/` (a generated root), `data/tfds/{synth,real}/`.
"""
import glob
import os

from data_prep import synth
from data_prep.stroma_clips import build as build_tfds
from mottr import schema

GENERATED_SYNTH = os.path.join("data", "synth")  # under the workdir, when config.data.synth_root is ""
TFDS_DIR = os.path.join("data", "tfds")


def prepare(config, workdir: str) -> None:
  """Generates the synthetic train + val splits when the config names no root (each split once) and
  builds the records of the synthetic and, with config.data.real_root, the real train frames (once)."""
  root = config.data.synth_root or os.path.join(workdir, GENERATED_SYNTH)
  if config.data.synth_root:
    if not os.path.isfile(schema.annotation_path(root, "train")):
      raise schema.UserError(f"{root}: no annotations/instances_train.json; generate one with "
                             "python -m data_prep.synth --out_dir DIR or pass the real challenge root")
  else:
    frames = {"train": config.data.synth_frames, "val": max(config.eval_frames, 60)}
    for split, n in frames.items():
      if not os.path.isfile(schema.annotation_path(root, split)):
        synth.generate_split(root, split, n, config.data.synth_seed)
  name = f"r{config.model.image_size}"
  sources = [(root, "synth")]
  if config.data.real_root:
    if not os.path.isdir(os.path.join(config.data.real_root, "frames", "train")):
      raise schema.UserError(f"{config.data.real_root}: no frames/train/ folder of real sparse frames")
    sources.append((config.data.real_root, "real"))
  for manual_dir, kind in sources:
    data_dir = os.path.join(workdir, TFDS_DIR, kind)
    if not _built(data_dir, name):
      build_tfds(manual_dir, data_dir, name)


def _built(data_dir: str, name: str) -> bool:
  return bool(glob.glob(os.path.join(data_dir, "stroma_clips", name, "*", "dataset_info.json")))
