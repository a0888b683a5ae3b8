"""MO-ASHA (Schmucker et al., 2021): asynchronous successive halving whose promotion ranks a rung by
several objectives at once, as a Ray Tune scheduler.

Rungs sit at ``grace_period * reduction_factor**k`` epochs below the budget's last epoch. A trial
reaching a rung is recorded there with its objective values (clean error and a cheap corruption
error measured at the rung); it continues when it is among the best ``1 / reduction_factor`` of the
trials recorded at that rung, ranked by non-dominated sorting (moocore's Pareto ranks), ties within a front broken
by crowding distance (NSGA-II's: boundary points first, then the less crowded). Until a rung holds
``reduction_factor`` searched trials everything continues, as in ASHA. Trials marked ``protected``
in their results (the papers' configurations) are never stopped, since the fronts must include
them, and they take no promotion slot: they are comparators. They enter a rung's ranking (a searched
trial that papers dominate ranks lower), but the ``1 / reduction_factor`` that continue are counted
among the searched trials alone; otherwise a run's fourteen papers would fill every rung and stop
every searched trial at the first one.
"""
from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ..rundir import Column

# what a trial reports for the scheduler: its epoch, the objectives measured at a rung, and whether
# it is protected (the papers' configurations are never stopped)
EPOCH = "epoch"
RUNG_METRICS = (Column.RUNG_CLEAN_ERROR, Column.RUNG_CORRUPTION_ERROR)
PROTECTED = "protected"


def rungs(max_epochs: int, grace_period: int = 1, reduction_factor: int = 3) -> list[int]:
    """The epochs at which trials are compared (the last epoch is never a rung: it ends the trial)."""
    out, epoch = [], grace_period
    while epoch < max_epochs:
        out.append(epoch)
        epoch *= reduction_factor
    return out


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row of an (n, m) array of one front (inf at the extremes)."""
    n, m = values.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(values[:, j], kind="stable")
        span = values[order[-1], j] - values[order[0], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (values[order[2:], j] - values[order[:-2], j]) / span
    return distance


def promotion_order(values: Sequence[Sequence[float]]) -> np.ndarray:
    """Indices of ``values`` (rows of objectives, all minimised) from most to least promotable."""
    values = np.asarray(values, dtype=float)
    rank = moocore.pareto_rank(values)
    crowd = np.zeros(len(values))
    for r in np.unique(rank):
        members = rank == r
        crowd[members] = crowding_distance(values[members])
    return np.lexsort((-crowd, rank))


class MOASHA(FIFOScheduler):
    def __init__(self, max_epochs: int, grace_period: int = 1, reduction_factor: int = 3,
                 metrics: tuple[str, ...] = RUNG_METRICS, time_attr: str = EPOCH) -> None:
        super().__init__()
        self.rungs = rungs(max_epochs, grace_period, reduction_factor)
        self.reduction_factor = reduction_factor
        self.metrics, self.time_attr = metrics, time_attr
        self.recorded: dict[int, dict[str, tuple[float, ...]]] = {r: {} for r in self.rungs}
        self.protected: set[str] = set()
        self.stopped = 0

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        epoch = result.get(self.time_attr)
        if epoch not in self.recorded or not all(m in result for m in self.metrics):
            return TrialScheduler.CONTINUE
        rung = self.recorded[epoch]
        rung[trial.trial_id] = tuple(float(result[m]) for m in self.metrics)
        if result.get(PROTECTED):
            self.protected.add(trial.trial_id)
        if trial.trial_id in self.protected or self.promotable(trial.trial_id, rung):
            return TrialScheduler.CONTINUE
        self.stopped += 1
        return TrialScheduler.STOP

    def promotable(self, trial_id: str, rung: dict[str, tuple[float, ...]]) -> bool:
        """Whether ``trial_id`` is among the best ``1 / reduction_factor`` of the searched trials at
        ``rung``, ranked among all of its trials (papers included)."""
        keep = sum(i not in self.protected for i in rung) // self.reduction_factor
        if keep == 0:
            return True
        ids = list(rung)
        ranked = [ids[i] for i in promotion_order([rung[i] for i in ids]) if ids[i] not in self.protected]
        return trial_id in ranked[:keep]

    def debug_string(self) -> str:
        return f"MO-ASHA: rungs at epochs {self.rungs}, {self.stopped} trials stopped"
