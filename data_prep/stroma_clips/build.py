"""Builds the `stroma_clips` TFDS dataset (array_record) without TensorFlow.

  python -m data_prep.stroma_clips.build --manual_dir ROOT --data_dir OUT [--config r256]

Same result as `tfds build data_prep/stroma_clips --manual_dir ROOT --data_dir OUT
--file_format array_record`, which cannot start here: tensorflow_datasets 4.9.10's CLI
imports `convert_format_utils`, which touches `tf.train.Example` at import time.
In Python use the function `data_prep.stroma_clips.build`; importing this CLI module
would rebind that package attribute to the module.
"""
from absl import app
from absl import flags
import tensorflow_datasets as tfds

from data_prep.stroma_clips import StromaClips, build
from mottr.schema import run_cli

_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Challenge-layout root, or a folder "
                                  "holding frames/{split}/.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir to write to.", required=True)
_CONFIG = flags.DEFINE_enum("config", StromaClips.BUILDER_CONFIGS[0].name,
                            [c.name for c in StromaClips.BUILDER_CONFIGS], "Input resolution.")


def main(argv: list[str]) -> None:
  del argv
  path = build(_MANUAL_DIR.value, _DATA_DIR.value, _CONFIG.value)
  info = tfds.builder_from_directory(path).info
  sizes = " ".join(f"{name}={split.num_examples}" for name, split in sorted(info.splits.items()))
  print(f"{path}: {sizes}")


if __name__ == "__main__":
  app.run(run_cli(main))
