"""scripts/bench/compare_runs.py: windowed means of loss terms from training logs."""

import pytest

import compare_runs


def test_window_means_average_the_progress_lines_inside_the_window(tmp_path):
  log = tmp_path / "train.log"
  log.write_text("warm start from x\n"
                 "step 25/100 1.0 steps/s eta 1.0 min | focal=1.0 giou=2.0 loss=9.0\n"
                 "step 50/100 1.0 steps/s eta 1.0 min | focal=0.5 giou=1.0 loss=5.0\n"
                 "val count_error_bolt=1.000\n"
                 "step 75/100 1.0 steps/s eta 1.0 min | focal=0.3 giou=0.4 loss=2.0\n")
  assert compare_runs.window_means(str(log), 50, 75, ["focal", "giou", "dn_focal"]) == pytest.approx(
      {"focal": 0.4, "giou": 0.7})
  assert compare_runs.window_means(str(log), 25, 25, ["loss"]) == {"loss": 9.0}
  assert compare_runs.window_means(str(log), 200, 300, ["loss"]) is None
