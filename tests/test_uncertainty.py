"""Fronts with their uncertainty: means and intervals over seeds, dominance probabilities checked
against hand computations, hypervolume intervals."""
import numpy as np
import pandas as pd
import pytest

from ppsearch.reporting.uncertainty import (
    configurations,
    dominance_probability,
    dominance_table,
    hypervolume_interval,
)

OBJ = ("clean_error", "mce")


def test_dominance_probability_by_hand_one_objective():
    """A's two seeds 0.1 and 0.3 resample to means 0.1, 0.2, 0.3 with probabilities 1/4, 1/2, 1/4;
    B's single seed is 0.2: A dominates B only when its mean is 0.1 (strictly better): 1/4."""
    a, b = np.array([[0.1], [0.3]]), np.array([[0.2]])
    assert dominance_probability(a, b) == pytest.approx(0.25, abs=0.015)
    assert dominance_probability(b, a) == pytest.approx(0.25, abs=0.015)  # B dominates when A's mean is 0.3


def test_dominance_probability_by_hand_two_objectives():
    """A = (0.1, 0.5) and (0.1, 0.3); B = (0.2, 0.4) and (0.2, 0.6). Means on the first objective:
    A always 0.1 < B's 0.2. Second: A's mean is 0.5, 0.4, 0.3 (1/4, 1/2, 1/4), B's 0.4, 0.5, 0.6
    (1/4, 1/2, 1/4); A dominates when A's <= B's: 1 - P(A 0.5, B 0.4) = 1 - 1/16 = 15/16."""
    a, b = np.array([[0.1, 0.5], [0.1, 0.3]]), np.array([[0.2, 0.4], [0.2, 0.6]])
    assert dominance_probability(a, b) == pytest.approx(15 / 16, abs=0.01)
    assert dominance_probability(b, a) == 0.0


def _seeded_table():
    rows = []
    for config, origin, values in [("00000", "paper:plain", [(0.20, 1.00), (0.22, 1.02), (0.21, 1.01)]),
                                   ("00001", "searched", [(0.10, 0.50), (0.11, 0.52), (0.12, 0.51)]),
                                   ("00002", "searched", [(0.30, 0.40)])]:
        for k, (clean, mce) in enumerate(values):
            trial_id = config if k == 0 else f"{config}-seed{k}"
            rows.append({"trial_id": trial_id, "config_id": config, "origin": origin, "status": "completed",
                         "placement": "pp", "clean_error": clean, "mce": mce, "val_clean_error": clean,
                         "val_mce": mce})
    return pd.DataFrame(rows)


def test_configurations_have_means_intervals_and_seed_counts():
    summary = configurations(_seeded_table(), OBJ).set_index("config_id")
    assert summary.loc["00000", "seeds"] == 3 and summary.loc["00002", "seeds"] == 1
    assert summary.loc["00000", "clean_error"] == pytest.approx(0.21)
    # t(0.975, 2) = 4.303; sd of (0.20, 0.22, 0.21) = 0.01; half-width = 4.303 * 0.01 / sqrt(3)
    assert summary.loc["00000", "clean_error ci95"] == pytest.approx(4.3027 * 0.01 / 3 ** 0.5, rel=1e-3)
    assert np.isnan(summary.loc["00002", "clean_error ci95"])


def test_dominates_is_said_only_above_the_threshold_and_with_three_seeds_a_side():
    result = dominance_table(_seeded_table(), OBJ, ["00001", "00002"], threshold=0.95).set_index("front_config")
    assert result.loc["00001", "p_dominates"] == 1.0 and result.loc["00001", "verdict"] == "dominates"
    assert result.loc["00002", "verdict"] == "fewer than 3 seeds: not assessed"
    two_seeds = _seeded_table().drop(index=2)  # the paper with seeds 0 and 1 only
    verdict = dominance_table(two_seeds, OBJ, ["00001"]).set_index("front_config").loc["00001", "verdict"]
    assert verdict == "fewer than 3 seeds: not assessed"
    strict = dominance_table(_seeded_table().assign(clean_error=lambda t: t["clean_error"].where(
        t["config_id"] != "00001", 0.21)), OBJ, ["00001"], threshold=0.95).set_index("front_config")
    assert strict.loc["00001", "p_dominates"] < 0.95 and strict.loc["00001", "verdict"] == "not shown"
    assert (result["paper"] == "paper:plain").all()


def test_hypervolume_interval_contains_the_point_and_needs_two_seeds():
    table = _seeded_table()
    point, low, high = hypervolume_interval(table, OBJ, ["00001"], np.array([1.0, 2.0]))
    assert point == pytest.approx((1 - 0.11) * (2 - 0.51)) and low <= point <= high and low < high
    assert np.isnan(hypervolume_interval(table, OBJ, ["00002"], np.array([1.0, 2.0]))[1])
