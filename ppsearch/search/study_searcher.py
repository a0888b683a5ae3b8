"""A Ray Tune searcher that drives an Optuna study through Optuna's public ask-and-tell interface.

The study (in the run's journal) is the search's state and its budget. Each configuration handed
out carries its trial number in the study, which names the trial's folder. The searcher hands out
configurations until the study holds the papers' configurations plus the searched ones asked for,
then reports FINISHED; a driver that starts again first hands out the trials an interrupted driver
left running (they resume from their epoch checkpoints, or are read back if they had finished), so
an interruption neither loses a configuration nor adds one.

The papers' configurations, and the designs carried from earlier fronts (``seeding``), are enqueued
once, when the study is created, tagged with their origin.
Optuna is told the truth about trials that did not finish: stopped early -> PRUNED (never COMPLETE
with low-budget values), failed -> FAIL.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from ray.tune.search import Searcher

from ..rundir import SEARCHED, Column, TrialStatus, paper_origin
from .space import Space

STUDY_TRIAL = "study_trial"  # configuration entry: the trial's number in the study
_RUNNING, _WAITING = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING


def trial_folder_name(number: int) -> str:
    return f"{number:05d}"


def finished_values(result: Mapping[str, Any], objectives: Sequence[str]) -> list[float] | None:
    """The objective values of a trial that completed its budget with all of them finite, else
    None: only such values are ever told to Optuna as a finished trial."""
    values = [result.get(o) for o in objectives]
    if result.get(Column.STATUS) == TrialStatus.COMPLETED and all(v is not None and math.isfinite(v) for v in values):
        return values
    return None


def open_study(space: Space, storage: optuna.storages.BaseStorage, study_name: str, objectives: Sequence[str],
               sampler: optuna.samplers.BaseSampler,
               seeded: Sequence[tuple[str, dict[str, Any]]] = ()) -> optuna.Study:
    """The run's study; created with the objectives' names, the papers' configurations and then
    the ``seeded`` (origin, search point) pairs enqueued when it does not exist yet."""
    exists = study_name in optuna.get_all_study_names(storage)
    study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler,
                                directions=["minimize"] * len(objectives), load_if_exists=True)
    if not exists:
        with warnings.catch_warnings():  # flagged experimental; it is what optuna-dashboard shows
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objectives))
        for name, preset in space.paper_configs.items():
            study.enqueue_trial(space.search_point(preset), user_attrs={Column.ORIGIN: paper_origin(name)})
        for origin, point in seeded:
            study.enqueue_trial(point, user_attrs={Column.ORIGIN: origin})
    return study


# called with a trial's configuration when it ended without a result of its own: its status
# (pruned or failed), its last report (the epochs it trained, its rung values) and, for a failure,
# what Ray reported
EndedWithoutRecord = Callable[[dict[str, Any], TrialStatus, dict[str, Any], str], None]


class StudySearcher(Searcher):
    def __init__(self, study: optuna.Study, space: Space, objectives: Sequence[str], trials: int,
                 on_ended: EndedWithoutRecord) -> None:
        super().__init__(metric=list(objectives), mode=["min"] * len(objectives))
        self.study, self.space, self.objectives = study, space, tuple(objectives)
        # trials the study holds when the search is done: the enqueued ones (papers, seeded designs) and `trials`
        self.budget = sum(t.user_attrs.get(Column.ORIGIN, SEARCHED) != SEARCHED for t in study.trials) + trials
        self.on_ended = on_ended
        # trials an interrupted driver left running: handed out first, into their own folders
        self.resumable = [t.number for t in study.get_trials(deepcopy=False, states=(_RUNNING,))]
        self.live: dict[str, dict[str, Any]] = {}  # Ray trial id -> the configuration handed out

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        if self.resumable:
            trial = self.study.get_trials(deepcopy=False)[self.resumable.pop(0)]
            config = {**self.space.defaults, **trial.params}
        elif self.study.get_trials(deepcopy=False, states=(_WAITING,)) or len(self.study.trials) < self.budget:
            trial = self.study.ask()
            config = self.space.suggest(trial)  # define-by-run: the active dimensions, then the defaults left
            config = {**trial.params, **config}
            trial.set_user_attr(Column.ORIGIN, trial.user_attrs.get(Column.ORIGIN, SEARCHED))
        else:
            return Searcher.FINISHED
        config.update({Column.ORIGIN: trial.user_attrs.get(Column.ORIGIN, SEARCHED), STUDY_TRIAL: trial.number,
                       Column.TRIAL_ID: trial_folder_name(trial.number)})
        self.live[trial_id] = config
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self.live.pop(trial_id, None)
        if config is None:
            return
        result = result or {}
        values = finished_values(result, self.objectives)
        if values is not None:
            state = optuna.trial.TrialState.COMPLETE
        elif error or result.get(Column.STATUS) == TrialStatus.FAILED:
            state = optuna.trial.TrialState.FAIL
        else:
            state = optuna.trial.TrialState.PRUNED
        self.study.tell(config[STUDY_TRIAL], values, state=state)
        if values is None and result.get(Column.STATUS) not in (TrialStatus.COMPLETED, TrialStatus.FAILED):
            status = TrialStatus.FAILED if error else TrialStatus.PRUNED
            self.on_ended(config, status, result, "ray reported an error" if error else "")


class FixedConfigs(Searcher):
    """Hands out ``configs`` one by one, then FINISHED (confirmation seeds: trials of the run that
    are not trials of the study, so the sampler never learns from a seed it did not ask for)."""

    def __init__(self, configs: Sequence[dict[str, Any]], on_ended: EndedWithoutRecord) -> None:
        super().__init__()
        self.waiting = list(configs)
        self.on_ended = on_ended
        self.live: dict[str, dict[str, Any]] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        if not self.waiting:
            return Searcher.FINISHED
        self.live[trial_id] = self.waiting.pop(0)
        return self.live[trial_id]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self.live.pop(trial_id, None)
        status = (result or {}).get(Column.STATUS)
        if config is not None and status not in (TrialStatus.COMPLETED, TrialStatus.FAILED):
            self.on_ended(config, TrialStatus.FAILED if error else TrialStatus.PRUNED, result or {},
                          "ray reported an error" if error else "")

