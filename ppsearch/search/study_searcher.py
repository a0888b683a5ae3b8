"""A Ray Tune searcher that drives an Optuna study through Optuna's public ask-and-tell interface.

The study (in the run's journal) is the search's state and its budget. Each configuration handed
out carries its trial number in the study, which names the trial's folder. The searcher hands out
configurations until the study holds the papers' configurations plus the searched ones asked for,
then reports FINISHED; a driver that starts again first hands out the trials an interrupted driver
left running and those the study holds as finished whose folder has no record (:func:`to_resume`):
they resume from their epoch checkpoints, or are read back if they had finished, so an interruption
neither loses a configuration nor adds one. A trial whose file system refused a write reports
:data:`STORAGE_FAULT` instead of a result: the study is not told, so the trial stays resumable.

Every searcher hands Ray a configuration holding one :class:`~ppsearch.rundir.Assignment` under
:data:`ASSIGNMENT`. The papers' configurations, and the designs carried from earlier fronts
(``seeding``), are enqueued once, tagged with their origin.
Optuna is told the truth about trials that did not finish: stopped early -> PRUNED (never COMPLETE
with low-budget values), failed -> FAIL. A run with constraints sets every measured trial's excesses
as its Optuna constraints (``Trial.set_constraint``) before telling it, so that the constrained
samplers steer away from designs that break them; a design that broke one was not trained and is
told PRUNED (it has no error values, and it never enters a front).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher

from ..errors import UserError
from ..library_internals import study_trial
from ..rundir import (
    CHECKPOINT_DIR,
    CONSTRAINT_PREFIX,
    RECORD_FILE,
    SEARCHED,
    Assignment,
    Column,
    TrialStatus,
    paper_origin,
)
from .space import Space

ASSIGNMENT = "assignment"  # the one key of the configuration Ray hands a trial
STORAGE_FAULT = "storage_fault"  # reported instead of a result when the file system refused a trial's write
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


def enqueue_origins(study: optuna.Study, space: Space, seeded: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
    """Enqueue the papers' configurations and then the ``seeded`` (origin, search point) pairs, each
    origin once: a study that holds an origin already (a continued run) is not given it again."""
    held = {t.user_attrs.get(Column.ORIGIN) for t in study.get_trials(deepcopy=False)}
    wanted = [(paper_origin(name), space.search_point(preset)) for name, preset in space.paper_configs.items()]
    for origin, point in [*wanted, *seeded]:
        if origin not in held:
            study.enqueue_trial(point, user_attrs={Column.ORIGIN: origin})


def check_study_space(study: optuna.Study, space: Space, run_dir: Path) -> None:
    """Refuse to continue a run whose space changed since its trials were sampled: every sampled
    dimension must still be searched from the same distribution."""
    distributions = {d.name: d.distribution() for d in space.dimensions}
    for trial in study.get_trials(deepcopy=False):
        for name, held in trial.distributions.items():
            if distributions.get(name) != held:
                now = distributions[name] if name in distributions else "not searched"
                raise UserError(f"{run_dir} was started with another space: its trials sampled {name} from {held}, "
                                f"the space {space.path} now says {now}; restore the space or start a new run "
                                f"(another --out)")


def to_resume(study: optuna.Study, trials_dir: Path) -> tuple[list[int], list[str]]:
    """The study's trials to hand out before new ones, with a line saying what happens to each:
    those an interrupted driver left running, and those the study holds as finished whose folder
    has no record (deleted, or lost to a fault). Each resumes from its checkpoint (one that trained
    its whole budget is only measured again) or, without one, trains from the start."""
    numbers, lines = [], []
    for trial in study.get_trials(deepcopy=False):
        folder = trials_dir / trial_folder_name(trial.number)
        if trial.state == _WAITING or (trial.state != _RUNNING and (folder / RECORD_FILE).is_file()):
            continue
        numbers.append(trial.number)
        why = ("left running by an interrupted driver" if trial.state == _RUNNING
               else f"{trial.state.name.lower()} in the study but without a record")
        how = "resuming it from its checkpoint" if (folder / CHECKPOINT_DIR).is_dir() else "training it from the start"
        lines.append(f"trial {folder.name}: {why}; {how}")
    return numbers, lines


# called with a trial's assignment when it ended without a result of its own: its status (pruned
# or failed), its last report (the epochs it trained, its rung values) and, for a failure, what Ray
# reported
EndedWithoutRecord = Callable[[Assignment, TrialStatus, dict[str, Any], str], None]


class StudySearcher(Searcher):
    def __init__(self, study: optuna.Study, space: Space, objectives: Sequence[str], trials: int, seed: int,
                 resumable: Sequence[int], on_ended: EndedWithoutRecord) -> None:
        super().__init__(metric=list(objectives), mode=["min"] * len(objectives))
        self.study, self.space, self.objectives, self.seed = study, space, tuple(objectives), seed
        # trials the study holds when the search is done: the enqueued ones (papers, seeded designs) and `trials`
        self.budget = sum(t.user_attrs.get(Column.ORIGIN, SEARCHED) != SEARCHED for t in study.trials) + trials
        # what this session runs: the budget less the trials a session before it finished
        self.trials_to_run = max(0, self.budget - sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)))
        self.on_ended = on_ended
        self.resumable = list(resumable)  # handed out first, into their own folders (:func:`to_resume`)
        self.live: dict[str, Assignment] = {}  # Ray trial id -> the assignment handed out

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        if self.resumable:
            trial = self.study.get_trials(deepcopy=False)[self.resumable.pop(0)]
            configuration = {**self.space.defaults, **trial.params}
        # without deep copies: `study.trials` copies every trial, 180 ms a suggestion at 2,000 trials
        elif (self.study.get_trials(deepcopy=False, states=(_WAITING,))
              or len(self.study.get_trials(deepcopy=False)) < self.budget):
            trial = self.study.ask()
            configuration = self.space.suggest(trial)  # define-by-run: the active dimensions, then the defaults left
            configuration = {**trial.params, **configuration}
            trial.set_user_attr(Column.ORIGIN, trial.user_attrs.get(Column.ORIGIN, SEARCHED))
        else:
            return Searcher.FINISHED
        name = trial_folder_name(trial.number)
        self.live[trial_id] = Assignment(configuration, name, trial.user_attrs.get(Column.ORIGIN, SEARCHED),
                                         self.seed, name, trial.number)
        return {ASSIGNMENT: self.live[trial_id]}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        assignment = self.live.pop(trial_id, None)
        result = result or {}
        if assignment is None or STORAGE_FAULT in result:
            return
        if self.study.get_trials(deepcopy=False)[assignment.study_trial].state.is_finished():
            # a finished trial whose record was missing, run again: the study knows it already
            _report_ended(self.on_ended, assignment, result, error)
            return
        excesses = {k.removeprefix(CONSTRAINT_PREFIX): v for k, v in result.items() if k.startswith(CONSTRAINT_PREFIX)}
        if excesses:
            trial = study_trial(self.study, assignment.study_trial)
            for name, excess in excesses.items():
                if name not in trial.constraints:  # set by a driver interrupted before it told the study
                    trial.set_constraint(name, excess)
        values = finished_values(result, self.objectives)
        if values is not None:
            state = optuna.trial.TrialState.COMPLETE
        elif error or result.get(Column.STATUS) == TrialStatus.FAILED:
            state = optuna.trial.TrialState.FAIL
        else:
            state = optuna.trial.TrialState.PRUNED
        self.study.tell(assignment.study_trial, values, state=state)
        _report_ended(self.on_ended, assignment, result, error)


class FixedConfigs(Searcher):
    """Hands out ``assignments`` one by one, then FINISHED (confirmation seeds: trials of the run
    that are not trials of the study, so the sampler never learns from a seed it did not ask for)."""

    def __init__(self, assignments: Sequence[Assignment], on_ended: EndedWithoutRecord) -> None:
        super().__init__()
        self.waiting = list(assignments)
        self.trials_to_run = len(self.waiting)
        self.on_ended = on_ended
        self.live: dict[str, Assignment] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        if not self.waiting:
            return Searcher.FINISHED
        self.live[trial_id] = self.waiting.pop(0)
        return {ASSIGNMENT: self.live[trial_id]}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        assignment = self.live.pop(trial_id, None)
        if assignment is not None and STORAGE_FAULT not in (result or {}):
            _report_ended(self.on_ended, assignment, result or {}, error)


def _report_ended(on_ended: EndedWithoutRecord, assignment: Assignment, result: dict[str, Any], error: bool) -> None:
    """Hand a trial that ended without a final status of its own (stopped early, lost to Ray) to
    ``on_ended``; a trial that completed, failed or broke a constraint wrote its own record."""
    if result.get(Column.STATUS) not in (TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.INFEASIBLE):
        on_ended(assignment, TrialStatus.FAILED if error else TrialStatus.PRUNED, result,
                 "ray reported an error" if error else "")
