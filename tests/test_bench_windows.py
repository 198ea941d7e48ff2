"""scripts/bench/bench_windows.py: window starts, exits and the summary line."""
import pytest

import bench_windows
from mottr.schema import UserError


def test_whole_windows_only():
  assert bench_windows.window_starts(900, 60, 30) == list(range(1, 842, 30))
  assert bench_windows.window_starts(900, 60, 30)[-1] + 59 <= 900
  assert bench_windows.window_starts(60, 60, 30) == [1]
  assert bench_windows.window_starts(59, 60, 30) == []
  with pytest.raises(UserError, match="at least 1"):
    bench_windows.window_starts(900, 60, 0)


def test_summary_counts_exact_windows_and_errors_per_class():
  rows = [(1, {"bolt": 2, "nut": 1}, {"bolt": 2, "nut": 1}),
          (31, {"bolt": 2, "nut": 1}, {"bolt": 3, "nut": 0}),
          (61, {"bolt": 1}, {"bolt": 0, "nut": 1})]
  assert bench_windows.summary(rows) == ("summary: windows=3 exact=1 abs_error bolt=2 nut=2 "
                                         "signed bolt=+0 nut=+0")


def test_exits_are_named_by_class_and_frame_within_the_window():
  from mottr import counting
  counts = counting.Counts({"bolt": 1, "nut": 1}, [counting.Event(600, 7, "bolt"), counting.Event(655, 9, "nut")])
  assert bench_windows.exits(counts, 601) == "b0 n55"
