"""Pareto analysis on hand-made results tables with hand-computed answers."""
import numpy as np
import pandas as pd
import pytest

from ppsearch.reporting.pareto import dominated_papers, front, hypervolume, hypervolume_history, reference_point

OBJ = ("clean_error", "mce")


def _table():
    return pd.DataFrame([
        # trial_id, origin, status, clean_error, mce, finished_at
        ("p1", "paper:plain", "completed", 0.10, 1.00, "2026-01-01T00:00:01"),
        ("p2", "paper:pp", "completed", 0.20, 0.80, "2026-01-01T00:00:02"),
        ("s1", "searched", "completed", 0.09, 0.90, "2026-01-01T00:00:03"),  # dominates p1 by 0.01 / 0.10
        ("s2", "searched", "completed", 0.30, 0.95, "2026-01-01T00:00:04"),  # dominated
        ("s3", "searched", "pruned", 0.01, 0.01, "2026-01-01T00:00:05"),  # never in a front
        ("s4", "searched", "failed", np.nan, np.nan, "2026-01-01T00:00:06"),
    ], columns=["trial_id", "origin", "status", *OBJ, "finished_at"])


def test_front_keeps_completed_non_dominated_rows():
    assert front(_table(), OBJ)["trial_id"].tolist() == ["p2", "s1"]
    assert front(_table(), ("clean_error",))["trial_id"].tolist() == ["s1"]


def test_reference_point_is_anchored_on_the_papers():
    assert reference_point(_table(), OBJ) == pytest.approx([0.22, 1.1])
    no_papers = _table().assign(origin="searched")
    assert reference_point(no_papers, OBJ) == pytest.approx([0.33, 1.1])


def test_hypervolume_by_hand():
    reference = np.array([0.22, 1.1])
    # front p2 (0.20, 0.80), s1 (0.09, 0.90): union of boxes to (0.22, 1.1)
    expected = (0.22 - 0.09) * (1.1 - 0.90) + (0.22 - 0.20) * (0.90 - 0.80)
    assert hypervolume(_table(), OBJ, reference) == pytest.approx(expected)
    assert hypervolume(_table(), OBJ, np.array([0.05, 0.5])) == 0.0  # nothing inside the reference box


def test_hypervolume_history_grows_with_the_trials():
    history = hypervolume_history(_table(), OBJ, np.array([0.22, 1.1]))
    assert history["trial_id"].tolist() == ["p1", "p2", "s1", "s2"]
    first = (0.22 - 0.10) * (1.1 - 1.0)
    assert history["hypervolume"].iloc[0] == pytest.approx(first)
    assert history["hypervolume"].is_monotonic_increasing
    assert history["hypervolume"].iloc[-1] == pytest.approx(hypervolume(_table(), OBJ, np.array([0.22, 1.1])))


def test_which_papers_the_search_dominated_and_by_how_much():
    result = dominated_papers(_table(), OBJ).set_index("origin")
    assert bool(result.loc["paper:plain", "dominated"]) and result.loc["paper:plain", "dominated_by"] == "s1"
    assert result.loc["paper:plain", "margin"] == pytest.approx(0.01)  # min(0.10 - 0.09, 1.00 - 0.90)
    assert not result.loc["paper:pp", "dominated"] and np.isnan(result.loc["paper:pp", "margin"])
