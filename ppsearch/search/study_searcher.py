"""A Ray Tune searcher that drives an Optuna study through Optuna's public ask-and-tell interface.

The study (in the run's journal) is the searcher's whole state: which Ray trial is which Optuna
trial is a user attribute of the Optuna trial, and a restored searcher rebuilds that map from the
study. The papers' configurations are enqueued once, when the study is created, tagged with their
origin; an Optuna trial that ``ask`` returns carries the tag, a sampled one does not.

Optuna is told the truth about trials that did not finish: stopped early -> PRUNED (never COMPLETE
with low-budget values), failed -> FAIL.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from ray.tune.search import Searcher

from ..rundir import SEARCHED, Column, TrialStatus, paper_origin
from .space import Space

TUNE_TRIAL_ID = "tune_trial_id"  # user attribute linking an Optuna trial to its trial folder


def finished_values(result: Mapping[str, Any], objectives: Sequence[str]) -> list[float] | None:
    """The objective values of a trial that completed its budget with all of them finite, else
    None: only such values are ever told to Optuna as a finished trial."""
    values = [result.get(o) for o in objectives]
    if result.get(Column.STATUS) == TrialStatus.COMPLETED and all(v is not None and math.isfinite(v) for v in values):
        return values
    return None


def open_study(space: Space, storage: optuna.storages.BaseStorage, study_name: str, objectives: Sequence[str],
               sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """The run's study; created with the objectives' names and the papers' configurations
    enqueued when it does not exist yet."""
    exists = study_name in optuna.get_all_study_names(storage)
    study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler,
                                directions=["minimize"] * len(objectives), load_if_exists=True)
    if not exists:
        with warnings.catch_warnings():  # flagged experimental; it is what optuna-dashboard shows
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objectives))
        for name, preset in space.paper_configs.items():
            study.enqueue_trial(space.search_point(preset), user_attrs={Column.ORIGIN: paper_origin(name)})
    return study


class StudySearcher(Searcher):
    def __init__(self, study: optuna.Study, space: Space, objectives: Sequence[str]) -> None:
        super().__init__(metric=list(objectives), mode=["min"] * len(objectives))
        self.study, self.space, self.objectives = study, space, tuple(objectives)
        self.numbers: dict[str, int] = {}  # Ray trial id -> Optuna trial number, for trials not yet told

    def suggest(self, trial_id: str) -> dict[str, Any]:
        trial = self.study.ask()
        defaults = self.space.suggest(trial)
        origin = trial.user_attrs.get(Column.ORIGIN, SEARCHED)  # enqueued papers carry theirs
        trial.set_user_attr(Column.ORIGIN, origin)
        trial.set_user_attr(TUNE_TRIAL_ID, trial_id)
        self.numbers[trial_id] = trial.number
        return {**trial.params, **defaults, Column.ORIGIN: origin}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        number = self.numbers.pop(trial_id, None)
        if number is None:
            return
        result = result or {}
        values = finished_values(result, self.objectives)
        if values is not None:
            state = optuna.trial.TrialState.COMPLETE
        elif error or result.get(Column.STATUS) == TrialStatus.FAILED:
            state = optuna.trial.TrialState.FAIL
        else:
            state = optuna.trial.TrialState.PRUNED
        try:
            self.study.tell(number, values, state=state)
        except (RuntimeError, ValueError):  # already told, before the driver was interrupted
            pass

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as file:  # the study holds the state; this marks the save
            json.dump({"study_name": self.study.study_name}, file)

    def restore(self, checkpoint_path: str) -> None:
        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        self.numbers = {t.user_attrs[TUNE_TRIAL_ID]: t.number for t in running if TUNE_TRIAL_ID in t.user_attrs}
