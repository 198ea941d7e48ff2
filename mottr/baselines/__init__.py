"""Baselines mottr is compared against, on the same videos, counting rule and evaluation.

- `mottr.baselines.classical`: motion-compensated running-median background subtraction,
  contours -> boxes, SORT association and a shape rule for bolt vs nut (no learning).
- `mottr.baselines.sort`: tracking-by-detection, our detector run per frame without track
  queries and associated by Hungarian IoU matching with a Kalman motion model (SORT).

Both write the same files as `mottr.infer` (counts.json, tracks.txt, tracks.json, counts.png,
annotated.mp4); `scripts/bench/bench_baselines.py` runs and scores all three side by side.
"""
