"""Exports a checkpoint of a training workdir (the latest, or --step) as a shippable model (config.json + params.msgpack).

  python -m mottr.export --workdir workdirs/cpu --out DIR [--step N] [--refiner DIR] [--overwrite]
      [--config.tracker.birth_threshold=0.8 ...] [--config.model.snap_tracks=True ...]
  (or: mottr-export ...)

The exported config.json holds the whole config: the architecture, how it was trained and the
`tracker` section, the thresholds `mottr.infer` tracks with (a workdir older than that section
gets the defaults of `mottr.tracker.TrackerSettings`), so the tuned values travel with the
weights. `--config.a.b=v` changes a value in it (architecture values that change parameter
shapes are refused when the parameters load). A workdir whose config still holds an option
deleted since (docs/history.md) exports when that option is off (the key is dropped).

Writes config.json and params.msgpack into --out (required: shipping is `--out mottr/assets/shipped
--overwrite`, never a default), each moved into place atomically; other files there are never touched.
An --out that already holds them (an earlier export, e.g. the shipped model) is refused unless --overwrite.
A model with a crop refiner (`refiner.enabled`) exports with its `refiner.msgpack`; `--refiner DIR` (a
`mottr.train_refiner` workdir) attaches that one instead, with its `refiner` section of the config.
"""
import os

from absl import flags

from mottr import checkpoint
from mottr import cli
from mottr import config_overrides
from mottr import outputs
from mottr.schema import UserError

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The flags of this CLI, defined only when it runs."""
  flags.DEFINE_string("workdir", None, "Training workdir (its latest checkpoint, or --step) or exported model.")
  flags.DEFINE_string("out", None, "Folder for config.json and params.msgpack (other files there are "
                      "kept); shipping: --out mottr/assets/shipped --overwrite.")
  flags.DEFINE_integer("step", None, "Checkpoint step of the workdir to export; default: its latest.")
  flags.DEFINE_string("refiner", None, "A mottr.train_refiner workdir whose crop refiner the model exports with.")
  flags.DEFINE_bool("overwrite", False, "Replace config.json and params.msgpack already in --out; "
                    "without it such an --out is refused.")


def main(argv: list[str]) -> None:
  cli.quiet_logging()
  cli.check_no_arguments(argv)
  if not FLAGS.workdir:
    raise UserError("--workdir is required: a training workdir or an exported model")
  if not FLAGS.out:
    raise UserError("--out is required: a folder for the exported model (mottr/assets/shipped "
                    "with --overwrite replaces the shipped one)")
  outputs.check_output_dir(FLAGS.out, checkpoint.EXPORT_NAMES, overwrite=FLAGS.overwrite,
                           flag="--out")
  config, params = checkpoint.load(FLAGS.workdir, cli.overrides(), step=FLAGS.step)
  refiner_dir = FLAGS.refiner or FLAGS.workdir
  if FLAGS.refiner:
    config.refiner = checkpoint.read_config(FLAGS.refiner).refiner
    config_overrides.apply(config, cli.overrides())
  refiner = checkpoint.load_refiner(refiner_dir, config)
  checkpoint.export(config, params, FLAGS.out, overwrite=FLAGS.overwrite, refiner_params=refiner)
  size = os.path.getsize(os.path.join(FLAGS.out, "params.msgpack"))
  which = "" if FLAGS.step is None else f" step {FLAGS.step}"
  print(f"{FLAGS.workdir}{which} -> {FLAGS.out} ({size / 2**20:.1f} MiB)")


def run_main() -> None:
  """The program (`python -m mottr.export`, console script `mottr-export`)."""
  define_flags()
  cli.run_program(main, __doc__)


if __name__ == "__main__":
  run_main()
