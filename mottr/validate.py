"""Validates a challenge-layout root and prints a summary per split.

  python -m data_prep.validate --root DIR [--split val]

A problem is printed as one line (file, record, rule) and the exit status is 2.
"""
from absl import app
from absl import flags

from data_prep import challenge
from mottr.errors import UserError, run_cli

def _define_flags() -> None:
  """CLI flags, defined only when this module runs as a program."""
  flags.DEFINE_string("root", None, "Challenge-layout root directory.", required=True)
  flags.DEFINE_list("split", None, "Splits to check; default: every split "
                    "with an annotations/instances_{split}.json.")


def main(argv: list[str]) -> None:
  del argv
  splits = flags.FLAGS.split or challenge.present_splits(flags.FLAGS.root)
  if not splits:
    raise UserError(f"{flags.FLAGS.root}: no annotations/instances_{{split}}.json; "
                    "expected a challenge-layout root")
  for split in splits:
    coco = challenge.validate_root(flags.FLAGS.root, split)
    print(challenge.format_summary(split, challenge.summarize(coco)), flush=True)


if __name__ == "__main__":
  _define_flags()
  app.run(run_cli(main))
