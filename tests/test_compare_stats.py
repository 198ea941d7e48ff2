"""Tests for scripts/bench/compare_stats.py (importable: pytest's pythonpath, pyproject.toml)."""
import compare_stats
import pytest

from data_prep import scene_stats
from mottr.schema import UserError


def test_compare_flags_statistics_outside_tolerance():
  real = {s.name: 10.0 for s in scene_stats.STATS}
  generated = dict(real, acceleration=10.5, arrival_gap=12.0, max_nuts=0.0)
  table, failed = compare_stats.compare(real, generated, 0.10)
  assert failed == ["arrival_gap", "max_nuts"]
  assert "+20.0" in table and "<-- OUT" in table


def test_zero_real_value_only_matches_zero():
  real = {s.name: 0.0 for s in scene_stats.STATS}
  assert compare_stats.compare(real, dict(real), 0.1)[1] == []
  assert compare_stats.compare(real, dict(real, max_nuts=1.0), 0.1)[1] == ["max_nuts"]


def test_missing_real_folder_is_explained(tmp_path):
  with pytest.raises(UserError, match="real reference folder absent"):
    compare_stats.real_stats(str(tmp_path / "nowhere"), "val")
