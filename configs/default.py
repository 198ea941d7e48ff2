"""MOTR on GPU/TPU: the full recipe at 256 px, larger batch, longer schedule (the defaults of the config
schema, mottr/config.py, which every recipe here starts from).

Run:  scripts/train.sh --workdir=workdirs/default --config.data.synth_root=data/synth
      (any JAX accelerators; the batch is split across all devices; multi-host with --config.distributed=True).
      Set --config.data.workers=N (grain processes) on a machine with spare cores.
Time: this config's whole curriculum is not measured on an accelerator; configs/gpu_finetune.py (same model,
      batch 48 five-frame clips, 12 workers) trained at about 2400 frames/s on one H200 (docs/h200_session.md).
"""
import ml_collections

from mottr import config


def get_config() -> ml_collections.ConfigDict:
  return config.get_config()  # the schema's defaults are this recipe
