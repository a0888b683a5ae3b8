"""MO-ASHA: rungs, multi-objective promotion order, stopping decisions of the Ray Tune scheduler,
its rung records across an interrupted run, and the probes a rung ranks on."""
import dataclasses
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ray.tune.schedulers import TrialScheduler
from run_dirs import SETTINGS

from ppsearch.robustness.evaluate import Predictor, evaluate
from ppsearch.robustness.perturbations import ALL_PERTURBATIONS
from ppsearch.rundir import MOASHA_FILE, OBJECTIVES, Assignment
from ppsearch.search.moasha import MOASHA, crowding_distance, promotion_order, rung_metrics, rungs
from ppsearch.search.probes import PROBE_SEQUENCES, probe_flip_rate, rung_probes
from ppsearch.search.study_searcher import ASSIGNMENT, trial_folder_name

TWO = ("rung_clean_error", "rung_corruption_error")  # the probes of a run on clean error and mCE


def test_rungs_are_geometric_and_below_the_last_epoch():
    assert rungs(4) == [1, 3]
    assert rungs(200) == [1, 3, 9, 27, 81]
    assert rungs(8, grace_period=2, reduction_factor=2) == [2, 4]
    assert rungs(1) == []


def test_rungs_rank_on_a_probe_of_every_objective_of_the_run():
    assert rung_metrics(("clean_error", "mce")) == TWO
    assert rung_metrics(("clean_error", "mce", "mfr")) == (*TWO, "rung_flip_rate")
    assert rung_metrics(("mfr", "relative_mce")) == ("rung_flip_rate", "rung_corruption_increase")
    assert rung_metrics(("mce", "corruption_error")) == ("rung_corruption_error",)  # the same ranking: one probe
    assert rung_metrics(("clean_error", "latency_ms")) == ("rung_clean_error", "latency_ms")  # a cost is itself
    for objective in OBJECTIVES:
        assert rung_metrics((objective,))


def test_crowding_distance_matches_nsga2():
    values = np.array([[0.0, 1.0], [0.25, 0.5], [1.0, 0.0]])
    # middle point: (1.0 - 0.0) / 1.0 + (1.0 - 0.0) / 1.0 = 2; the extremes are infinite
    assert crowding_distance(values).tolist() == [np.inf, 2.0, np.inf]


def test_promotion_ranks_fronts_then_crowding_then_hypervolume_contribution():
    values = [[0.1, 0.9], [0.2, 0.5], [0.3, 0.6], [0.5, 0.1], [0.25, 0.55]]
    # front 1: 0, 1, 3; its extremes 0 and 3 are tied on crowding, and 3 adds more hypervolume
    # (scaled to the rows' range, reference 1.1: 0 adds 0.25 x 0.1, 3 adds 0.1 x 0.5); front 2: 4; front 3: 2
    assert promotion_order(values).tolist() == [3, 0, 1, 4, 2]


def _trial(trial_id, session=1):
    """A Ray trial: Ray's id changes from one session of a run to the next, the run's does not."""
    return SimpleNamespace(trial_id=f"ray{session}-{trial_id}",
                           config={ASSIGNMENT: Assignment({}, trial_id, "searched", 0, trial_id)})


def _result(epoch, *values, protected=False, metrics=TWO):
    return {"epoch": epoch, **dict(zip(metrics, values)), "protected": protected}


def test_scheduler_stops_dominated_trials_at_a_rung():
    scheduler = MOASHA(max_epochs=4, metrics=TWO, reduction_factor=3)
    decisions = [scheduler.on_trial_result(None, _trial(name), _result(1, clean, robust))
                 for name, clean, robust in [("a", 0.3, 0.5), ("b", 0.2, 0.4), ("c", 0.5, 0.7), ("d", 0.6, 0.8)]]
    # a, b: fewer than 3 recorded, everything continues; c: 3 recorded, keep 1 (b), c is dominated;
    # d: 4 recorded, keep 1 (b)
    assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.STOP]
    assert scheduler.on_trial_result(None, _trial("x"), _result(1, 0.7, 0.9)) == TrialScheduler.STOP
    # 6 recorded, keep 2: b and e form the first front
    assert scheduler.on_trial_result(None, _trial("e"), _result(1, 0.1, 0.9)) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, _trial("f"), _result(2, 0.9, 0.9)) == TrialScheduler.CONTINUE  # not a rung


def test_a_trial_best_on_flip_rate_continues_when_mfr_is_an_objective():
    """c is worse than a and b on clean error and the corruption probe, but flips least: a run
    that optimises mFR keeps it, one that does not stops it."""
    rows = [("a", 0.2, 0.3, 2.0), ("b", 0.25, 0.35, 2.1), ("x", 0.4, 0.5, 2.2), ("y", 0.45, 0.55, 2.3),
            ("z", 0.5, 0.6, 2.4), ("c", 0.6, 0.7, 0.5)]
    three = rung_metrics(("clean_error", "mce", "mfr"))
    for metrics, expected in [(TWO, TrialScheduler.STOP), (three, TrialScheduler.CONTINUE)]:
        scheduler = MOASHA(max_epochs=4, metrics=metrics)
        decisions = [scheduler.on_trial_result(None, _trial(name), _result(1, *values, metrics=three))
                     for name, *values in rows]
        assert decisions[-1] == expected  # 6 searched, keep 2: b and then c (with mFR), a and b (without)


def test_protected_trials_are_never_stopped():
    scheduler = MOASHA(max_epochs=4, metrics=TWO, reduction_factor=2)
    scheduler.on_trial_result(None, _trial("a"), _result(1, 0.1, 0.1))
    assert scheduler.on_trial_result(None, _trial("paper"), _result(1, 0.9, 0.9, protected=True)) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, _trial("b"), _result(1, 0.9, 0.9)) == TrialScheduler.STOP


def test_papers_are_comparators_that_take_no_promotion_slot():
    """Fourteen papers better than every searched trial used to fill the rung and stop the searched
    ones at once; now 1 / reduction_factor of the searched trials continue, ranked among all."""
    scheduler = MOASHA(max_epochs=4, metrics=TWO, reduction_factor=3)
    for k in range(14):
        scheduler.on_trial_result(None, _trial(f"paper{k}"), _result(1, 0.01 * k, 0.2 - 0.01 * k, protected=True))
    decisions = [scheduler.on_trial_result(None, _trial(name), _result(1, clean, robust))
                 for name, clean, robust in [("a", 0.5, 0.6), ("b", 0.4, 0.5), ("c", 0.6, 0.7), ("d", 0.3, 0.4)]]
    # a, b: fewer than 3 searched at the rung, they continue; c: 3 searched, keep 1 (b); d: keep 1 (d)
    assert decisions == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP,
                         TrialScheduler.CONTINUE]


# the audit's rung: a and b form a front of two (both boundary points, infinite crowding); b also
# dominates the paper and adds more hypervolume
AUDIT_RUNG = {"paper": (0.35, 0.35), "c": (0.6, 0.7), "a": (0.2, 0.5), "b": (0.3, 0.3)}


def _arrive(order):
    scheduler = MOASHA(max_epochs=4, metrics=TWO)
    decisions = {name: scheduler.on_trial_result(None, _trial(name), _result(1, *AUDIT_RUNG[name],
                                                                             protected=name == "paper"))
                 for name in order}
    return scheduler, decisions


def test_a_searched_trial_that_dominates_a_paper_continues_though_it_arrives_second():
    assert _arrive(["paper", "c", "a", "b"])[1]["b"] == TrialScheduler.CONTINUE
    assert _arrive(["paper", "c", "b", "a"])[1]["a"] == TrialScheduler.STOP


@pytest.mark.parametrize("last", list(AUDIT_RUNG))
def test_the_same_rung_values_in_any_arrival_order_give_the_same_decisions(last):
    outcomes = set()
    for first in itertools.permutations([name for name in AUDIT_RUNG if name != last]):
        scheduler, decisions = _arrive([*first, last])
        rung = scheduler.recorded[1]
        outcomes.add((decisions[last], tuple(scheduler.promotable(name, rung) for name in sorted(AUDIT_RUNG))))
    assert len(outcomes) == 1


def test_a_continued_run_decides_as_an_uninterrupted_one(tmp_path):
    """Results reach rungs 1 and 3; the driver is killed after some of them and a new one (a new
    scheduler, new Ray trial ids) takes the rest: every decision is the uninterrupted run's."""
    rng = np.random.default_rng(0)
    names = [trial_folder_name(k) for k in range(12)]
    values = {(name, epoch): tuple(rng.uniform(0.1, 0.9, 2)) for name in names for epoch in (1, 3)}
    papers = {names[0], names[5]}

    def feed(scheduler, events, session=1):
        return [scheduler.on_trial_result(None, _trial(name, session),
                                          _result(epoch, *values[name, epoch], protected=name in papers))
                for name, epoch in events]

    uninterrupted = MOASHA(max_epochs=10, metrics=TWO)
    at_first = feed(uninterrupted, [(name, 1) for name in names])
    # the trials that continued at rung 1 reach rung 3
    events = [(name, 1) for name in names] + [(n, 3) for n, d in zip(names, at_first) if d == TrialScheduler.CONTINUE]
    expected = at_first + feed(uninterrupted, events[len(names):])

    cut = 7
    before = feed(MOASHA(max_epochs=10, metrics=TWO, run_dir=tmp_path), events[:cut])
    assert (tmp_path / MOASHA_FILE).is_file()
    after = feed(MOASHA(max_epochs=10, metrics=TWO, run_dir=tmp_path), events[cut:], session=2)
    assert before + after == expected
    # a new driver without the records would decide otherwise
    assert feed(MOASHA(max_epochs=10, metrics=TWO), events[cut:], session=2) != expected[cut:]


@pytest.mark.parametrize("missing", TWO)
def test_results_without_rung_metrics_are_ignored(missing):
    scheduler = MOASHA(max_epochs=4, metrics=TWO)
    result = _result(1, 0.5, 0.5)
    del result[missing]
    for name in "abcd":
        assert scheduler.on_trial_result(None, _trial(name), result) == TrialScheduler.CONTINUE


@pytest.mark.parametrize("protocol", ["seed-paper", "hendrycks"])
def test_the_flip_rate_probe_is_the_protocols_mfr_on_the_first_sequences(tmp_path, protocol):
    """On a -P set in the official layout, the probe equals the full evaluation's mFR (its frame
    rule, perturbations and normalisers) restricted to the first PROBE_SEQUENCES sequences."""
    rng = np.random.default_rng(0)
    sequences, frames, size = PROBE_SEQUENCES + 2, 4, 8  # the sequences after the first ones must not count
    for name in ALL_PERTURBATIONS:  # a run's sets hold every perturbation; the protocol picks its ten
        np.save(tmp_path / f"{name}.npy", rng.integers(0, 256, (sequences, frames, size, size, 3), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(sequences, dtype=np.int64))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    predict = Predictor(model, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    clean = torch.from_numpy(rng.integers(0, 256, (sequences, size, size, 3), dtype=np.uint8))
    full = evaluate(predict, clean, torch.zeros(sequences, dtype=torch.long), c_source="none",
                    p_source=f"official:{tmp_path}", p_images=PROBE_SEQUENCES, protocol=protocol, dataset="fashion-mnist",
                    progress=False)
    assert full.summary["mfr"] > 0
    assert probe_flip_rate(predict, tmp_path, protocol, "fashion-mnist") == pytest.approx(full.summary["mfr"])


def test_a_rung_reports_a_cost_objective_as_the_trials_measured_cost():
    settings = dataclasses.replace(SETTINGS, objectives=("clean_error", "latency_ms"))
    epoch = SimpleNamespace(clean_error=0.25, cost={"params": 1000, "flops": 2e6, "latency_ms": 1.5})
    values = rung_probes(epoch, SimpleNamespace(selection=(None, None)), settings)
    assert values == {"rung_clean_error": 0.25, "latency_ms": 1.5}
