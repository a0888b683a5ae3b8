"""Pareto analysis on hand-made results tables with hand-computed answers."""
import numpy as np
import pandas as pd
import pytest

from ppsearch.selection.pareto import front, hypervolume, hypervolume_history, reference_point, validation_front

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


def test_the_validation_front_selects_on_validation_values_among_the_search_trials():
    table = _table().assign(config_id=lambda t: t["trial_id"], val_clean_error=[0.3, 0.1, 0.2, 0.05, 0.0, np.nan],
                            val_mce=[0.5, 0.9, 0.8, 0.95, 0.0, np.nan])
    confirmation = table.iloc[[3]].assign(trial_id="s2-seed1", val_clean_error=0.0, val_mce=0.0)
    table = pd.concat([table, confirmation])
    # on validation values: p1 (0.3, 0.5), p2 (0.1, 0.9), s1 (0.2, 0.8), s2 (0.05, 0.95): none dominates another;
    # the test values (where s2 is dominated) play no part, nor does the confirmation seed's row
    assert validation_front(table, OBJ)["trial_id"].tolist() == ["p1", "p2", "s1", "s2"]
    assert validation_front(table.drop(columns="val_mce"), OBJ).empty

