"""Validates a challenge-layout root and prints a summary per split.

  python -m data_prep.validate --root DIR [--split val]

A problem is printed as one line (file, record, rule) and the exit status is 2.
"""
from absl import app
from absl import flags

from data_prep import challenge
from mottr.errors import UserError, run_cli

_ROOT = flags.DEFINE_string("root", None, "Challenge-layout root directory.", required=True)
_SPLIT = flags.DEFINE_list("split", None, "Splits to check; default: every split "
                           "with an annotations/instances_{split}.json.")


def main(argv: list[str]) -> None:
  del argv
  splits = _SPLIT.value or challenge.present_splits(_ROOT.value)
  if not splits:
    raise UserError(f"{_ROOT.value}: no annotations/instances_{{split}}.json; "
                    "expected a challenge-layout root")
  for split in splits:
    coco = challenge.validate_root(_ROOT.value, split)
    print(challenge.format_summary(split, challenge.summarize(coco)), flush=True)


if __name__ == "__main__":
  app.run(run_cli(main))
