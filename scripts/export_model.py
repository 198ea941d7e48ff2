"""Exports the latest checkpoint of a training workdir as a shippable model (config.json + params.msgpack).

  python scripts/export_model.py --workdir workdirs/cpu [--out mottr/assets/shipped]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mottr.predictor import SHIPPED_CHECKPOINT, export, load_predictor  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", default=SHIPPED_CHECKPOINT)
  args = parser.parse_args()
  predictor = load_predictor(args.workdir)
  export(predictor.config, predictor.params, args.out)
  size = os.path.getsize(os.path.join(args.out, "params.msgpack"))
  print(f"{args.workdir} -> {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
  main()
