"""The search: Ray Tune runs trials, Optuna samples configurations, MO-ASHA stops weak trials early.

A run has four phases, each computing what it needs once and handing it on:
:func:`prepare_run` checks everything, then writes the run's settings, makes the validation -C/-P sets
and opens the study (no trial yet); :func:`search` runs the study's trials, measured on the
validation split only; :func:`measure_tests` measures the test split of the configurations a report
states test values for (the validation front's and the papers'), from their saved models;
:func:`confirm` trains those configurations with further seeds, measured on both splits.
:func:`run_search` is the four in a row (``ppsearch run``).

The run directory (``ppsearch.rundir``) holds everything, so that rerunning the same command
continues it: the Optuna study (the search's state and budget), one folder per trial named after its
number in the study (epoch checkpoints, then its record), the -C/-P sets. Ray Tune's own state is not
needed to continue: every driver starts a fresh Tuner whose searcher first hands out the trials an
interrupted driver left unfinished. Results are read from the trial folders, not from Ray's memory.

One driver runs a run directory at a time (``run_lock``). Every start reconciles the study with the
trial folders (a trial the study holds without a record is run again from its checkpoint). A file
system that refuses a write, in the driver or in a trial, stops the run with a
:class:`~ppsearch.errors.StorageFault` naming the path; nothing is recorded as failed for it, so the
same command continues once the cause is fixed.
"""
from __future__ import annotations

import atexit
import dataclasses
import errno
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from ray.tune import Stopper
from ray.tune.schedulers import FIFOScheduler

from ..config import typed_config
from ..constraints import Constraint, parse_constraints
from ..data.streaming import DataAccess
from ..errors import RunIncomplete, UserError
from ..files import refused_write, storage_faults
from ..models.latency import LatencySetup, latency_problem
from ..rundir import (
    FINAL_STATUSES,
    JOURNAL_FILE,
    LATENCY_DEVICES,
    SEARCHED,
    SETS_DIR,
    TRIALS_DIR,
    TUNE_DIR,
    Assignment,
    Column,
    LatencyBackend,
    ResultsTable,
    RunSettings,
    TrialStatus,
    completed,
    ended_record,
    search_trials,
    settings_for_run,
    start_run,
    write_record_once,
)
from ..selection.pareto import untested_reported
from ..tracking import Tracker, Tracking
from ..training.trial import TrialConfig, check_run, evaluation_sets, trial_dataset
from .cluster import Resources, connect_ray
from .confirmation import next_confirmations
from .execution import TrialContext, measure_trial_test, search_trial
from .moasha import EPOCH, MOASHA, RUNG_METRICS, rung_metrics
from .progress import SessionProgress
from .run_lock import RunLock, check_free, hold_run
from .seeding import seeded_designs
from .space import Space, load_space
from .strategies import Scheduler, check_constrained, check_scheduler, make_sampler
from .study_searcher import (
    ASSIGNMENT,
    STORAGE_FAULT,
    FixedConfigs,
    StudySearcher,
    check_study_space,
    enqueue_origins,
    to_resume,
    trial_folder_name,
)


@dataclasses.dataclass
class RunClock:
    """Where a run's wall time goes, phase by phase (``ppsearch run`` prints it at the end): each
    :meth:`mark` closes the phase that ran since the previous one."""

    started: float = dataclasses.field(default_factory=time.monotonic)  # --time-budget counts from it
    phases: dict[str, float] = dataclasses.field(default_factory=dict)  # phase -> seconds, in order
    first_trial: float | None = None  # seconds from the start to the first trial's start
    last: float | None = None

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - (self.started if self.last is None else self.last)
        self.last = now

    def trial_started(self) -> None:
        if self.first_trial is None:
            self.first_trial = time.monotonic() - self.started

    def render(self) -> str:
        first = "" if self.first_trial is None else f" (the first trial started {self.first_trial:.1f} s in)"
        return ("phases: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.phases.items())
                + f"; total {time.monotonic() - self.started:.1f} s{first}")


@dataclasses.dataclass
class PreparedRun:
    """A run checked and set up: its settings, space, -C/-P sets (in ``context``), study and
    results table; what the search and the confirmation run on."""

    run_dir: Path
    settings: RunSettings
    space: Space
    defaults: TrialConfig  # a trial of the space's defaults: the sizes and split every trial of the run shares
    resources: Resources
    context: TrialContext
    study: optuna.Study
    scheduler: Any  # MO-ASHA, or Ray Tune's FIFO scheduler
    table: ResultsTable
    quiet: bool
    clock: RunClock
    lock: RunLock
    resumable: list[int]  # the study's trials to hand out before new ones (study_searcher.to_resume)
    tracker: Tracker | None = None  # the trials' MLflow runs (--mlflow)

    def remaining(self) -> float | None:
        """Seconds left of --time-budget (None: no limit)."""
        budget = self.resources.time_budget_s
        return None if budget is None else budget - (time.monotonic() - self.clock.started)

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    def track(self, trial_ids: Iterable[str]) -> None:
        """Bring the MLflow runs of ``trial_ids`` up to their records (with --mlflow)."""
        if self.tracker is not None:
            for trial_id in trial_ids:
                self.tracker.trial_recorded(self.run_dir / TRIALS_DIR / trial_id)


def run_search(run_dir: str | Path, settings: RunSettings, resources: Resources = Resources(), *,
               access: DataAccess = DataAccess(), quiet: bool = False, clock: RunClock | None = None,
               tracking: Tracking | None = None) -> pd.DataFrame:
    """Run (or continue) the search in ``run_dir``, then confirm its validation front and the
    papers' configurations with further seeds as ``settings.confirm_seeds`` says; returns the
    results table. ``clock`` and ``tracking``: as :func:`prepare_run` takes them."""
    prepared = prepare_run(run_dir, load_space(settings.space), settings, resources, access=access, quiet=quiet,
                           clock=clock, tracking=tracking)
    search(prepared)
    measure_tests(prepared)
    return confirm(prepared)


def prepare_run(run_dir: str | Path, space: Space, settings: RunSettings, resources: Resources = Resources(), *,
                access: DataAccess = DataAccess(), quiet: bool = False, clock: RunClock | None = None,
                tracking: Tracking | None = None) -> PreparedRun:
    """Check everything before anything is written (the run's records included, and ``tracking``'s
    MLflow); then connect Ray,
    take the run's lock, write the run's settings (a new run), repair a torn journal, open the
    study (refused if the space changed since its trials were sampled), find the trials to resume
    (one line each), enqueue the papers' configurations and the ``--seed-from`` designs, and make the
    -C/-P sets, and bring the MLflow runs of the trials that have records up to date (with
    ``tracking``). ``space`` is the one ``settings.space`` names, loaded; ``clock`` times the phases
    (one started now, unless the caller's started earlier)."""
    clock = clock or RunClock()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run_dir).resolve()
    check_latency_setup(settings, resources)
    if tracking is not None:
        tracking.check()
    constraints = run_constraints(settings, space)
    settings = settings_for_run(run_dir, settings)
    sampler = make_sampler(settings.sampler, settings.seed)
    moasha = check_scheduler(settings.scheduler) == Scheduler.MOASHA
    defaults, data = check_run(settings, space.defaults, access)
    continued = (run_dir / JOURNAL_FILE).is_file()
    if not continued and settings.trials == 0 and not space.paper_configs and not settings.seed_from:
        raise UserError(f"--trials 0 with space {space.name}, which has no paper configurations: the run would train "
                        f"nothing; ask for --trials 1 or more")
    # the designs of earlier fronts are enqueued when the study is created; a continued run has them
    seeded = seeded_designs(space, settings.objectives, () if continued else settings.seed_from)
    table = ResultsTable(run_dir)  # every record read (a damaged one named) before anything starts
    check_free(run_dir)
    clock.mark("checks")
    trials_per_node = connect_ray(resources)
    clock.mark("Ray start")

    lock = hold_run(run_dir)
    try:
        with storage_faults(run_dir):
            study = start_run(run_dir, settings, sampler)
            check_study_space(study, space, run_dir)
            resumable, repairs = to_resume(study, run_dir / TRIALS_DIR)
            enqueue_origins(study, space, seeded.enqueued)
            clock.mark("study")
            sets = evaluation_sets(run_dir / SETS_DIR, defaults, data, with_test=False, progress=not quiet)
            clock.mark("validation sets")
        tracker = tracking.open(run_dir) if tracking is not None else None
    except BaseException:
        lock.release()
        raise
    atexit.register(lock.release)  # an interrupted driver leaves the lock naming nobody
    # the trials load their own copies, sharing each node's memory budget; the driver keeps none
    del data
    trial_dataset.cache_clear()
    scheduler = MOASHA(defaults.epochs, rung_metrics(settings.objectives), run_dir) if moasha else FIFOScheduler()
    context = TrialContext(run_dir, space, settings, sets, tuple(scheduler.rungs) if moasha else (),
                           max(1, int(resources.cpus_per_trial)), access, trials_per_node, constraints)
    prepared = PreparedRun(run_dir, settings, space, defaults, resources, context, study, scheduler, table, quiet, clock,
                           lock, resumable, tracker)
    if lock.taken_over:
        print(f"ppsearch: took over {run_dir} from the driver that ended without releasing it ({lock.taken_over})",
              file=sys.stderr, flush=True)
    for line in repairs:
        prepared.say(line)
    if seeded.enqueued or seeded.skipped:
        prepared.say(f"seeded from {len(settings.seed_from)} earlier run(s): {len(seeded.enqueued)} front design(s) "
                     f"trained after the papers' configurations")
        for line in seeded.skipped:
            prepared.say(f"  {line}")
    if tracker is not None:
        prepared.track(sorted(table.recorded))  # sorted: a configuration's run before its confirmations'
        clock.mark("MLflow")
    return prepared


def check_latency_setup(settings: RunSettings, resources: Resources) -> None:
    """Refuse a latency the trials could not measure: an unknown backend or device, a GPU the trials
    are not given, a backend whose packages are missing."""
    if settings.latency_backend not in tuple(LatencyBackend):
        raise UserError(f"--latency-backend: unknown {settings.latency_backend!r}; allowed: {', '.join(LatencyBackend)}")
    if settings.latency_device not in ("", *LATENCY_DEVICES):
        raise UserError(f"--latency-device: unknown {settings.latency_device!r}; allowed: {', '.join(LATENCY_DEVICES)}")
    if settings.latency_device == "cuda" and not resources.gpus_per_trial:
        raise UserError("--latency-device cuda: the trials have no GPU (--gpus-per-trial 0); give them one, or time "
                        "latency on cpu")
    device = settings.latency_device or ("cuda" if resources.gpus_per_trial else "cpu")
    problem = latency_problem(LatencySetup(settings.latency_batch, device, settings.latency_backend))
    if problem:
        raise UserError(problem)


def run_constraints(settings: RunSettings, space: Space) -> tuple[Constraint, ...]:
    """The run's constraints, refused where they cannot work: a sampler that ignores constraints, a
    ratio without the plain paper configuration it divides by."""
    constraints = parse_constraints(settings.constraints)
    if constraints:
        check_constrained(settings.sampler)
    ratio = next((c for c in constraints if c.relative), None)
    if ratio is not None and space.plain_paper() is None:
        raise UserError(f"--constraint {ratio.text}: a ratio to the plain model needs a plain paper configuration "
                        f"(placement none, no anti-aliasing) in space {space.name}; bound it absolutely instead")
    return constraints


def search(prepared: PreparedRun) -> None:
    """Run the study's trials (papers, seeded designs, then sampled ones) until it holds the
    trials asked for or --time-budget is spent."""
    settings = prepared.settings
    _fit(prepared, StudySearcher(prepared.study, prepared.space, settings.objectives, settings.trials, settings.seed,
                                 prepared.resumable, _ended_without_record(prepared)), prepared.scheduler, "search")
    prepared.clock.mark("search")


def measure_tests(prepared: PreparedRun) -> None:
    """Make the test -C/-P sets (the confirmation seeds need them too), then measure the test split
    of every reported search trial that lacks it, from its saved model, as Ray tasks with a trial's
    resources; each measurement lands in its trial's record once, so an interrupted run measures
    the rest when it continues. Skipped once --time-budget is spent (the run is then incomplete)."""
    left = prepared.remaining()
    if completed(prepared.table.frame()).empty or (left is not None and left <= 0):
        return
    settings, context, defaults = prepared.settings, prepared.context, prepared.defaults
    with storage_faults(prepared.run_dir):
        evaluation_sets(prepared.run_dir / SETS_DIR, defaults,
                        trial_dataset(defaults.dataset, context.access, defaults.image_size), progress=not prepared.quiet)
    trial_dataset.cache_clear()
    prepared.clock.mark("test sets")
    table = prepared.table.frame()
    todo = [Assignment(typed_config(row), row[Column.TRIAL_ID], row[Column.ORIGIN], int(row[Column.SEED]),
                       row[Column.TRIAL_ID]) for _, row in untested_reported(table, settings.objectives).iterrows()]
    if todo:
        prepared.say(f"measuring the test split of {len(todo)} reported configuration(s) (the validation front's and "
                     f"the papers'), from their saved models")
        with storage_faults(prepared.run_dir):
            _run_tasks(prepared, measure_trial_test, todo)
            prepared.track(a.trial_id for a in todo)
            prepared.table.write()
    prepared.clock.mark("test measurements")


def _run_tasks(prepared: PreparedRun, task: Any, assignments: list[Assignment]) -> None:
    """``task(assignment, context)`` for each of ``assignments`` as Ray tasks with a trial's
    resources, each trial's record read into the results table as its task ends."""
    import ray

    resources = prepared.resources
    remote = ray.remote(num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial)(task)
    context = ray.put(prepared.context)
    pending = {remote.remote(assignment, context): assignment for assignment in assignments}
    while pending:
        (done,), _ = ray.wait(list(pending))
        ray.get(done)
        prepared.table.read(pending.pop(done).trial_id)


def confirm(prepared: PreparedRun) -> pd.DataFrame:
    """Train the validation front's and the papers' configurations with further seeds, a round at
    a time, until confirmation is finished or --time-budget is spent; returns the results table."""
    while (left := prepared.remaining()) is None or left > 0:
        assignments = next_confirmations(prepared.table.frame(), prepared.settings)
        if not assignments:
            break
        prepared.say(f"confirming: {len(assignments)} trial(s) of the validation front and the papers' configurations "
                     f"(seeds {', '.join(sorted({str(a.seed) for a in assignments}))})")
        _fit(prepared, FixedConfigs(assignments, _ended_without_record(prepared)), FIFOScheduler(), "confirmation")
    with storage_faults(prepared.run_dir):
        table = prepared.table.write()
    prepared.lock.release()
    prepared.clock.mark("confirmation")
    return table


def check_complete(study: optuna.Study, table: pd.DataFrame, objectives: tuple[str, ...]) -> None:
    """Raise :class:`RunIncomplete` when a run ends with a trial of the ``study`` without a record in
    its results ``table`` (a --time-budget spent before the budget of trials is one way), with a
    reported configuration (of ``objectives``' validation front, or a paper's) without test values,
    or with every searched trial (every trial, when none was searched) failed."""
    ended = set(table.loc[table[Column.STATUS].isin(FINAL_STATUSES), Column.TRIAL_ID]) if len(table) else set()
    missing = [trial_folder_name(t.number) for t in study.get_trials(deepcopy=False)
               if trial_folder_name(t.number) not in ended]
    if missing:
        raise RunIncomplete(f"{len(missing)} trial(s) of the run's budget have no record ({', '.join(missing[:5])}); "
                            f"run the same command again to complete them")
    untested = list(untested_reported(table, objectives)[Column.TRIAL_ID]) if len(table) else []
    if untested:
        raise RunIncomplete(f"{len(untested)} reported configuration(s) have no test values yet "
                            f"({', '.join(untested[:5])}); run the same command again to measure them (nothing is "
                            f"retrained)")
    study_trials = search_trials(table)
    if study_trials.empty:
        return
    searched = study_trials[study_trials[Column.ORIGIN] == SEARCHED]
    for rows, which in ((searched, "searched trial"), (study_trials, "trial")):
        if len(rows) and (rows[Column.STATUS] == TrialStatus.FAILED).all():
            raise RunIncomplete(f"every {which} of the search failed ({len(rows)}); their reasons are listed above")


def _fit(prepared: PreparedRun, searcher: StudySearcher | FixedConfigs, scheduler: Any, phase: str) -> None:
    """One Ray Tune session of ``searcher``'s trials (``phase``: what they are, for the progress
    display); the results table is written as they end."""
    from ray import tune

    resources, sessions = prepared.resources, prepared.run_dir / TUNE_DIR
    trainable = tune.with_resources(tune.with_parameters(search_trial, context=prepared.context),
                                    {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    stop = SessionStop()
    progress = None if prepared.quiet else SessionProgress(phase, searcher.trials_to_run, prepared.settings.objectives)
    try:
        with storage_faults(prepared.run_dir):
            _tune(prepared, trainable, searcher, scheduler, sessions, stop, progress)
    finally:
        if progress is not None:
            progress.close()
    if stop.fault:
        raise refused_write(stop.fault)  # the trials that were running resume then
    if stop.output_closed:
        raise BrokenPipeError(errno.EPIPE, "the output was closed by its reader")
    with storage_faults(prepared.run_dir):
        prepared.table.settle()
        prepared.track(sorted(prepared.table.recorded))  # the trials whose records came after their end
        prepared.table.write()


class SessionStop(Stopper):
    """Stops the whole Tune session when a trial reports that the file system refused its writes,
    or when the progress lines' reader closed the output (``| head``); trials stopped this way are
    not told to the searcher, so they stay resumable."""

    def __init__(self) -> None:
        self.fault = ""
        self.output_closed = False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.fault = self.fault or result.get(STORAGE_FAULT, "")
        return False

    def stop_all(self) -> bool:
        return bool(self.fault) or self.output_closed


def _tune(prepared: PreparedRun, trainable: Any, searcher: Any, scheduler: Any, sessions: Path,
          stop: SessionStop, progress: SessionProgress | None) -> None:
    from ray import tune

    resources = prepared.resources
    tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,  # the searcher ends it
                                    max_concurrent_trials=resources.max_concurrent or None,
                                    time_budget_s=prepared.remaining(), reuse_actors=True),
        run_config=tune.RunConfig(name=f"session-{len(list(sessions.glob('session-*'))) + 1}",
                                  storage_path=str(sessions), verbose=0,
                                  callbacks=[results_callback(prepared.table, progress, prepared.clock, stop),
                                             *_tracking_callbacks(prepared)],
                                  stop=stop, failure_config=tune.FailureConfig(max_failures=1)),
    ).fit()


def _ended_without_record(prepared: PreparedRun):
    """What the searchers call for a trial that ended without writing its record: stopped early by
    the scheduler (with the values of the rung it reached), or lost to a Ray error."""
    def record(assignment: Assignment, status: TrialStatus, last: dict[str, Any], reason: str) -> None:
        rung_values = {m: last[m] for m in RUNG_METRICS if m in last}
        write_record_once(prepared.run_dir / TRIALS_DIR / assignment.trial_id,
                          ended_record(assignment, status, last.get(EPOCH, 0), reason, rung_values))
        prepared.table.read(assignment.trial_id)
    return record


def _tracking_callbacks(prepared: PreparedRun) -> list:
    """With --mlflow, the Tune callback that keeps every trial's MLflow run up to date as it runs."""
    tracker, settings = prepared.tracker, prepared.settings
    if tracker is None:
        return []
    from ray import tune

    def folder(trial: Any) -> Path:
        return prepared.run_dir / TRIALS_DIR / trial.config[ASSIGNMENT].trial_id

    class TrackingCallback(tune.Callback):
        """Opens a trial's MLflow run as it starts, logs its rungs as they are reported, and its
        record as it ends (Ray Tune calls the searcher first, which writes the record of a trial
        that ended without one)."""

        def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
            assignment = trial.config[ASSIGNMENT]
            try:
                setup = TrialConfig.for_run(settings, assignment.configuration, assignment.seed).to_dict()
            except UserError:  # the trial fails, its record says why; its run gets what there is
                setup = dict(assignment.configuration)
            tracker.trial_started(folder(trial), {**setup, **assignment.identity()})

        def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
            if result.get(Column.STATUS) == TrialStatus.RUNNING:  # a rung's report; the last one is in the record
                tracker.rung_reached(folder(trial), result[EPOCH], {m: result[m] for m in RUNG_METRICS if m in result})

        def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
            tracker.trial_recorded(folder(trial))

        def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
            tracker.trial_recorded(folder(trial))

    return [TrackingCallback()]


# Ray Tune's trial states, for the trials that have no record yet
_TUNE_STATUS = {"RUNNING": TrialStatus.RUNNING, "PENDING": TrialStatus.PENDING, "PAUSED": TrialStatus.PENDING,
                "TERMINATED": TrialStatus.PRUNED, "ERROR": TrialStatus.FAILED}


def results_callback(table: ResultsTable, progress: SessionProgress | None, clock: RunClock, stop: SessionStop):
    from ray import tune

    class ResultsCallback(tune.Callback):
        """Keeps the results table up to date a trial at a time, has its files written as trials
        end (``ResultsTable.write_due``: seldom enough that writing them stays a small share of the
        driver's time), and tells ``progress`` (None: --quiet) of every trial's start and end. Ray
        calls these hooks before it changes the trial's state, so that trial is counted with the
        state it is entering."""

        def _update(self, trials: list, changing, status: TrialStatus) -> None:
            for trial in trials:
                if ASSIGNMENT in trial.config and trial is not changing:
                    table.live(trial.config[ASSIGNMENT], _TUNE_STATUS.get(trial.status, status))
            if STORAGE_FAULT in (changing.last_result or {}):  # not ended: it resumes when the run continues
                table.live(changing.config[ASSIGNMENT], TrialStatus.PENDING)
                return
            if status == TrialStatus.RUNNING:
                table.live(changing.config[ASSIGNMENT], status)
            else:
                table.ended(changing.config[ASSIGNMENT], status)
                table.write_due()
            if status == TrialStatus.RUNNING:
                self._show(lambda shown: shown.trial_started(table.frame(shown.columns(shown.objectives))))
            else:
                trial_id = changing.config[ASSIGNMENT].trial_id
                self._show(lambda shown: shown.trial_ended(trial_id, table.frame(shown.columns(shown.objectives))))

        def _show(self, tell: Callable[[SessionProgress], None]) -> None:
            """Tell ``progress`` something (nothing with --quiet, or once the output is closed)."""
            if progress is None or stop.output_closed:
                return
            try:
                tell(progress)
            except BrokenPipeError:  # Ray Tune would log it and go on: the session stops instead
                stop.output_closed = True

        def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
            clock.trial_started()
            self._update(trials, trial, TrialStatus.RUNNING)

        def on_step_end(self, iteration: int, trials: list, **info) -> None:
            self._show(SessionProgress.tick)

        def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials, trial, TrialStatus.PRUNED)  # unless its record says completed

        def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials, trial, TrialStatus.FAILED)

    return ResultsCallback()
