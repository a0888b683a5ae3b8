"""MO-ASHA: rungs, multi-objective promotion order, stopping decisions of the Ray Tune scheduler."""
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from ppsearch.search.moasha import MOASHA, crowding_distance, promotion_order, rungs


def test_rungs_are_geometric_and_below_the_last_epoch():
    assert rungs(4) == [1, 3]
    assert rungs(200) == [1, 3, 9, 27, 81]
    assert rungs(8, grace_period=2, reduction_factor=2) == [2, 4]
    assert rungs(1) == []


def test_crowding_distance_matches_nsga2():
    values = np.array([[0.0, 1.0], [0.25, 0.5], [1.0, 0.0]])
    # middle point: (1.0 - 0.0) / 1.0 + (1.0 - 0.0) / 1.0 = 2; the extremes are infinite
    assert crowding_distance(values).tolist() == [np.inf, 2.0, np.inf]


def test_promotion_ranks_fronts_then_crowding():
    values = [[0.1, 0.9], [0.2, 0.5], [0.3, 0.6], [0.5, 0.1], [0.25, 0.55]]
    # front 1: 0, 1, 3 (0 and 3 are its extremes); front 2: 4; front 3: 2
    assert promotion_order(values).tolist() == [0, 3, 1, 4, 2]


def _trial(trial_id):
    return SimpleNamespace(trial_id=trial_id)


def _result(epoch, clean, robust, protected=False):
    return {"epoch": epoch, "rung_clean_error": clean, "rung_corruption_error": robust, "protected": protected}


def test_scheduler_stops_dominated_trials_at_a_rung():
    scheduler = MOASHA(max_epochs=4, reduction_factor=3)
    decisions = [scheduler.on_trial_result(None, _trial(name), _result(1, clean, robust))
                 for name, clean, robust in [("a", 0.3, 0.5), ("b", 0.2, 0.4), ("c", 0.5, 0.7), ("d", 0.6, 0.8)]]
    # a, b: fewer than 3 recorded, everything continues; c: 3 recorded, keep 1 (b), c is dominated;
    # d: 4 recorded, keep 1 (b)
    assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.STOP]
    assert scheduler.on_trial_result(None, _trial("x"), _result(1, 0.7, 0.9)) == TrialScheduler.STOP
    # 6 recorded, keep 2: b and e form the first front
    assert scheduler.on_trial_result(None, _trial("e"), _result(1, 0.1, 0.9)) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, _trial("f"), _result(2, 0.9, 0.9)) == TrialScheduler.CONTINUE  # not a rung


def test_protected_trials_are_never_stopped():
    scheduler = MOASHA(max_epochs=4, reduction_factor=2)
    scheduler.on_trial_result(None, _trial("a"), _result(1, 0.1, 0.1))
    assert scheduler.on_trial_result(None, _trial("paper"), _result(1, 0.9, 0.9, protected=True)) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, _trial("b"), _result(1, 0.9, 0.9)) == TrialScheduler.STOP


def test_papers_are_comparators_that_take_no_promotion_slot():
    """Fourteen papers better than every searched trial used to fill the rung and stop the searched
    ones at once; now 1 / reduction_factor of the searched trials continue, ranked among all."""
    scheduler = MOASHA(max_epochs=4, reduction_factor=3)
    for k in range(14):
        scheduler.on_trial_result(None, _trial(f"paper{k}"), _result(1, 0.01 * k, 0.2 - 0.01 * k, protected=True))
    decisions = [scheduler.on_trial_result(None, _trial(name), _result(1, clean, robust))
                 for name, clean, robust in [("a", 0.5, 0.6), ("b", 0.4, 0.5), ("c", 0.6, 0.7), ("d", 0.3, 0.4)]]
    # a, b: fewer than 3 searched at the rung, they continue; c: 3 searched, keep 1 (b); d: keep 1 (d)
    assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP,
                         TrialScheduler.CONTINUE]


@pytest.mark.parametrize("missing", ["rung_clean_error", "rung_corruption_error"])
def test_results_without_rung_metrics_are_ignored(missing):
    scheduler = MOASHA(max_epochs=4)
    result = _result(1, 0.5, 0.5)
    del result[missing]
    for name in "abcd":
        assert scheduler.on_trial_result(None, _trial(name), result) == TrialScheduler.CONTINUE
