"""Exports the latest checkpoint of a training workdir as a shippable model (config.json + params.msgpack).

  python scripts/export_model.py --workdir workdirs/cpu [--out mottr/assets/shipped] [--overwrite]
      [--set model.velocity_prior=False ...]

--set changes inference-time config values in the exported config.json (architecture values that
change parameter shapes are refused when the parameters load).

Writes config.json and params.msgpack into --out, each moved into place atomically; other files
there are never touched. An --out that already holds them (an earlier export, e.g. the shipped
model) is refused unless --overwrite.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mottr import outputs  # noqa: E402
from mottr.config_overrides import parse_value  # noqa: E402
from mottr.errors import UserError  # noqa: E402
from mottr.predictor import EXPORT_NAMES, SHIPPED_CHECKPOINT, export, load_predictor  # noqa: E402


def _override(text: str) -> tuple[str, object]:
  key, sep, value = text.partition("=")
  if not sep:
    raise argparse.ArgumentTypeError(f"--set {text}: expected KEY=VALUE")
  return key, parse_value(value)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", default=SHIPPED_CHECKPOINT,
                      help="Folder for config.json and params.msgpack (other files there are "
                           "kept); default: the shipped model's")
  parser.add_argument("--overwrite", action="store_true",
                      help="Replace config.json and params.msgpack already in --out; without it "
                           "such an --out is refused")
  parser.add_argument("--set", type=_override, action="append", default=[], metavar="KEY=VALUE")
  args = parser.parse_args()
  try:
    outputs.check_output_dir(args.out, EXPORT_NAMES, overwrite=args.overwrite, flag="--out")
    predictor = load_predictor(args.workdir, overrides=dict(args.set))
    export(predictor.config, predictor.params, args.out, overwrite=args.overwrite)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  size = os.path.getsize(os.path.join(args.out, "params.msgpack"))
  print(f"{args.workdir} -> {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
  main()
