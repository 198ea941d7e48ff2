"""Plots the loss curves of a training run from its saved stdout (the progress lines of mottr.train).

  python scripts/bench/plot_training.py --log train.log --out docs/loss.png [--summary docs/train_summary.txt]

The summary (optional) keeps every validation line and every 10th progress line: what the
repository keeps of a run instead of its whole log.
"""
import argparse
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_STEP = re.compile(r"^step (\d+)/(\d+) .*\| (.*)$")


def parse(path: str) -> tuple[list[int], dict[str, list[float]], list[str], list[str]]:
  steps, series, progress, val = [], {}, [], []
  with open(path, errors="replace") as f:
    for line in f:
      line = line.strip().split("\r")[-1]
      m = _STEP.match(line)
      if m:
        steps.append(int(m.group(1)))
        for item in m.group(3).split():
          k, v = item.split("=")
          series.setdefault(k, []).append(float(v))
        progress.append(line)
      elif line.startswith("val ") or line.startswith("resumed"):
        val.append(f"(after step {steps[-1] if steps else 0}) {line}")
  return steps, series, progress, val


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--log", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--summary")
  args = parser.parse_args()
  steps, series, progress, val = parse(args.log)
  if not steps:
    raise SystemExit(f"error: {args.log}: no progress lines of mottr.train found")
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  axes[0].plot(steps, series["loss"], label="total")
  axes[0].set_yscale("log")
  for k in ("focal", "l1", "giou", "prop_focal", "prop_l1", "prop_giou"):
    if k in series:
      axes[1].plot(steps, series[k], label=k)
  axes[1].set_yscale("log")
  for ax, title in zip(axes, ("weighted loss", "terms (per box)")):
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  fig.savefig(args.out + ".tmp.png", dpi=90)
  os.replace(args.out + ".tmp.png", args.out)
  if args.summary:
    with open(args.summary + ".tmp", "w") as f:
      f.write("\n".join(progress[::10] + [progress[-1]] + val) + "\n")
    os.replace(args.summary + ".tmp", args.summary)
  print(f"{len(steps)} progress lines, last step {steps[-1]} -> {args.out}")


if __name__ == "__main__":
  main()
