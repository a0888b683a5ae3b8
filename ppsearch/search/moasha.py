"""MO-ASHA (Schmucker et al., 2021): asynchronous successive halving whose promotion ranks a rung by
several objectives at once, as a Ray Tune scheduler.

Rungs sit at ``grace_period * reduction_factor**k`` epochs below the budget's last epoch. A trial
reaching a rung is recorded there with a cheap probe of each objective of the run, measured at the
rung (:data:`RUNG_PROBES`: the clean error, a corruption error on a few images, a flip rate on a few
sequences); it continues when it is among the best ``1 / reduction_factor`` of the trials recorded at
that rung, ranked by non-dominated sorting (moocore's Pareto ranks), ties within a front broken by
crowding distance (NSGA-II's: boundary points first, then the less crowded), then by hypervolume
contribution, then by trial id. Every point of a front of one or two is a boundary point, so without
the hypervolume the earlier arrival would win; with it a ranking depends on the values recorded at
the rung, never on the order they came in. Until a rung holds ``reduction_factor`` searched trials
everything continues, as in ASHA. Trials marked ``protected`` in their results (the papers'
configurations) are never stopped, since the fronts must include them, and they take no promotion
slot: they are comparators. They enter a rung's ranking (a searched trial that papers dominate ranks
lower), but the ``1 / reduction_factor`` that continue are counted among the searched trials alone;
otherwise a run's fourteen papers would fill every rung and stop every searched trial at the first one.

The rung records are kept in the run directory (``MOASHA_FILE``), keyed by the run's own trial ids
(Ray's change from one session to the next), so that a continued run decides as an uninterrupted one.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import moocore
import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ..errors import UserError
from ..files import read_json, write_json
from ..rundir import COST_METRICS, MOASHA_FILE, Column
from .study_searcher import ASSIGNMENT

# what a trial reports for the scheduler: its epoch, the probes measured at a rung, and whether it
# is protected (the papers' configurations are never stopped)
EPOCH = "epoch"
PROTECTED = "protected"
# the cheap probe a rung measures for each objective a run may have (mCE and the unnormalised
# corruption error rank alike: they share one); a cost is known before training, so a rung ranks
# on the cost itself
RUNG_PROBES = {Column.CLEAN_ERROR: Column.RUNG_CLEAN_ERROR, Column.MCE: Column.RUNG_CORRUPTION_ERROR,
               Column.CORRUPTION_ERROR: Column.RUNG_CORRUPTION_ERROR,
               Column.RELATIVE_MCE: Column.RUNG_CORRUPTION_INCREASE, Column.MFR: Column.RUNG_FLIP_RATE,
               **{metric: metric for metric in COST_METRICS}}
RUNG_METRICS = tuple(dict.fromkeys(RUNG_PROBES.values()))  # every value a rung may measure
REFERENCE_MARGIN = 0.1  # the reference point lies this far beyond a rung's worst value, in units of its range


def rung_metrics(objectives: Sequence[str]) -> tuple[str, ...]:
    """The rung values that rank the trials of a run with ``objectives``: one probe per objective."""
    return tuple(dict.fromkeys(RUNG_PROBES[o] for o in objectives))


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


def hypervolume_contributions(front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row's exclusive share of the hypervolume that the (n, m) ``front`` dominates up to ``reference``."""
    if front.shape[1] == 1:  # a front of one objective is one value, repeated: no point adds anything
        return np.zeros(len(front))
    return moocore.hv_contributions(front, ref=reference)


def promotion_order(values: Sequence[Sequence[float]]) -> np.ndarray:
    """Indices of ``values`` (rows of objectives, all minimised) from most to least promotable:
    Pareto rank, then crowding distance, then hypervolume contribution, then row order. The
    hypervolume is taken with every objective scaled to the rows' range, against a reference point
    :data:`REFERENCE_MARGIN` beyond the worst row, so that no objective's units outweigh another's."""
    values = np.asarray(values, dtype=float)
    best, worst = values.min(axis=0), values.max(axis=0)
    scaled = (values - best) / np.where(worst > best, worst - best, 1.0)  # an objective all rows share: 0
    reference = np.full(values.shape[1], 1.0 + REFERENCE_MARGIN)
    rank = moocore.pareto_rank(values)
    crowd, contribution = np.zeros(len(values)), np.zeros(len(values))
    for r in np.unique(rank):
        members = rank == r
        crowd[members] = crowding_distance(values[members])
        contribution[members] = hypervolume_contributions(scaled[members], reference)
    return np.lexsort((-contribution, -crowd, rank))  # stable: the last ties keep row order


class MOASHA(FIFOScheduler):
    def __init__(self, max_epochs: int, metrics: Sequence[str], run_dir: Path | None = None,
                 grace_period: int = 1, reduction_factor: int = 3, time_attr: str = EPOCH) -> None:
        """Rank the rungs below ``max_epochs`` on ``metrics`` (see :func:`rung_metrics`), keeping the
        rung records in ``run_dir`` when given and continuing from the ones it holds."""
        super().__init__()
        self.rungs = rungs(max_epochs, grace_period, reduction_factor)
        self.reduction_factor = reduction_factor
        self.metrics, self.time_attr = tuple(metrics), time_attr
        # rung epoch -> the run's trial id -> its values of `metrics` there
        self.recorded: dict[int, dict[str, tuple[float, ...]]] = {r: {} for r in self.rungs}
        self.protected: set[str] = set()
        self.stopped = 0
        self.path = None if run_dir is None else Path(run_dir) / MOASHA_FILE
        if self.path is not None and self.path.is_file():
            self._load()

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        epoch = result.get(self.time_attr)
        if epoch not in self.recorded or not all(m in result for m in self.metrics):
            return TrialScheduler.CONTINUE
        trial_id = trial.config[ASSIGNMENT].trial_id
        rung = self.recorded[epoch]
        rung[trial_id] = tuple(float(result[m]) for m in self.metrics)
        if result.get(PROTECTED):
            self.protected.add(trial_id)
        if self.path is not None:
            self._save()
        if trial_id in self.protected or self.promotable(trial_id, rung):
            return TrialScheduler.CONTINUE
        self.stopped += 1
        return TrialScheduler.STOP

    def promotable(self, trial_id: str, rung: dict[str, tuple[float, ...]]) -> bool:
        """Whether ``trial_id`` is among the best ``1 / reduction_factor`` of the searched trials at
        ``rung``, ranked among all of its trials (papers included)."""
        keep = sum(i not in self.protected for i in rung) // self.reduction_factor
        if keep == 0:
            return True
        ids = sorted(rung)  # the rows in id order, not arrival order: the last tie-break is the id
        ranked = [ids[i] for i in promotion_order([rung[i] for i in ids]) if ids[i] not in self.protected]
        return trial_id in ranked[:keep]

    def _save(self) -> None:
        write_json(self.path, {"metrics": list(self.metrics),
                               "rungs": {str(epoch): {i: list(v) for i, v in rung.items()}
                                         for epoch, rung in self.recorded.items()},
                               "protected": sorted(self.protected)})

    def _load(self) -> None:
        saved = read_json(self.path)
        epochs = [str(r) for r in self.rungs]
        if saved.get("metrics") != list(self.metrics) or sorted(saved.get("rungs", {})) != sorted(epochs):
            raise UserError(f"{self.path} holds MO-ASHA rungs at epochs {', '.join(saved.get('rungs', {}))} ranked on "
                            f"{', '.join(saved.get('metrics', []))}; this run ranks rungs at epochs {', '.join(epochs)} "
                            f"on {', '.join(self.metrics)}: remove the file to forget its rung records")
        self.recorded = {r: {i: tuple(v) for i, v in saved["rungs"][str(r)].items()} for r in self.rungs}
        self.protected = set(saved["protected"])

    def debug_string(self) -> str:
        return f"MO-ASHA: rungs at epochs {self.rungs} ranked on {', '.join(self.metrics)}, {self.stopped} trials stopped"
