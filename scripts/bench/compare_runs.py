"""Compares training runs at equal steps: mean of each shared loss term over step windows.

  python scripts/bench/compare_runs.py --logs workdirs/cpu_detect.log,workdirs/cpu_detect_dn.log \
      --windows 250-500,750-1000,1250-1500 [--terms focal,l1,giou]

Reads the progress lines of `mottr.train` logs (or their summaries, `scripts/bench/plot_training.py`);
for each window (first-last step, inclusive) prints the mean of each term over the progress lines
inside it, one markdown row per run and window. Runs of the same config and seed see the same
batches in the same order, so the rows differ only by what the runs change.
"""
import argparse
import os

from plot_training import parse


def window_means(path: str, first: int, last: int, terms: list[str]) -> dict[str, float] | None:
  """Mean of each term over the progress lines with first <= step <= last; None if there are none."""
  steps, series, _, _ = parse(path)
  rows = [i for i, s in enumerate(steps) if first <= s <= last]
  if not rows:
    return None
  return {k: sum(series[k][i] for i in rows) / len(rows) for k in terms if k in series}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--logs", required=True, help="comma-separated training logs")
  parser.add_argument("--windows", required=True, help="comma-separated FIRST-LAST step windows")
  parser.add_argument("--terms", default="focal,l1,giou,prop_focal,prop_l1,prop_giou")
  args = parser.parse_args()
  terms = args.terms.split(",")
  missing = [p for p in args.logs.split(",") if not os.path.isfile(p)]
  if missing:
    raise SystemExit(f"error: no such log: {', '.join(missing)}")
  print("| run | steps | " + " | ".join(terms) + " |")
  print("|---|---|" + "---:|" * len(terms))
  for window in args.windows.split(","):
    first, last = (int(v) for v in window.split("-"))
    for path in args.logs.split(","):
      means = window_means(path, first, last, terms)
      cells = ["" if means is None or k not in means else f"{means[k]:.4f}" for k in terms]
      print(f"| {path} | {first}-{last} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
