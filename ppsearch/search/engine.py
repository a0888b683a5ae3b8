"""The search: Ray Tune runs trials, Optuna samples configurations, MO-ASHA stops weak trials early.

A run has three phases, each computing what it needs once and handing it on:
:func:`prepare_run` checks everything, then writes the run's settings, makes the -C/-P sets and opens
the study (no trial yet); :func:`search` runs the study's trials; :func:`confirm` trains the
validation front's and the papers' configurations with further seeds. :func:`run_search` is the
three in a row (``ppsearch run``).

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
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from ray.tune import Stopper
from ray.tune.schedulers import FIFOScheduler

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
    status_counts,
    validation_column,
    write_record_once,
)
from ..selection.pareto import validation_front
from ..training.trial import check_run, evaluation_sets, trial_dataset
from .cluster import Resources, connect_ray
from .confirmation import next_confirmations
from .execution import TrialContext, search_trial
from .moasha import EPOCH, MOASHA, RUNG_METRICS, rung_metrics
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
    resources: Resources
    context: TrialContext
    study: optuna.Study
    scheduler: Any  # MO-ASHA, or Ray Tune's FIFO scheduler
    table: ResultsTable
    quiet: bool
    clock: RunClock
    lock: RunLock
    resumable: list[int]  # the study's trials to hand out before new ones (study_searcher.to_resume)

    def remaining(self) -> float | None:
        """Seconds left of --time-budget (None: no limit)."""
        budget = self.resources.time_budget_s
        return None if budget is None else budget - (time.monotonic() - self.clock.started)

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)


def run_search(run_dir: str | Path, settings: RunSettings, resources: Resources = Resources(), *,
               access: DataAccess = DataAccess(), quiet: bool = False) -> pd.DataFrame:
    """Run (or continue) the search in ``run_dir``, then confirm its validation front and the
    papers' configurations with further seeds as ``settings.confirm_seeds`` says; returns the
    results table."""
    prepared = prepare_run(run_dir, load_space(settings.space), settings, resources, access=access, quiet=quiet)
    search(prepared)
    return confirm(prepared)


def prepare_run(run_dir: str | Path, space: Space, settings: RunSettings, resources: Resources = Resources(), *,
                access: DataAccess = DataAccess(), quiet: bool = False, clock: RunClock | None = None) -> PreparedRun:
    """Check everything before anything is written (the run's records included); then connect Ray,
    take the run's lock, write the run's settings (a new run), repair a torn journal, open the
    study (refused if the space changed since its trials were sampled), find the trials to resume
    (one line each), enqueue the papers' configurations and the ``--seed-from`` designs, and make the
    -C/-P sets. ``space`` is the one ``settings.space`` names, loaded; ``clock`` times the phases
    (one started now, unless the caller's started earlier)."""
    clock = clock or RunClock()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run_dir).resolve()
    check_latency_setup(settings, resources)
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
            sets = evaluation_sets(run_dir / SETS_DIR, defaults, data, progress=not quiet)
            clock.mark("-C/-P sets")
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
    prepared = PreparedRun(run_dir, settings, space, resources, context, study, scheduler, table, quiet, clock,
                           lock, resumable)
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
                                 prepared.resumable, _ended_without_record(prepared)), prepared.scheduler)
    prepared.clock.mark("search")


def confirm(prepared: PreparedRun) -> pd.DataFrame:
    """Train the validation front's and the papers' configurations with further seeds, a round at
    a time, until confirmation is finished or --time-budget is spent; returns the results table."""
    while (left := prepared.remaining()) is None or left > 0:
        assignments = next_confirmations(prepared.table.frame(), prepared.settings)
        if not assignments:
            break
        prepared.say(f"confirming: {len(assignments)} trial(s) of the validation front and the papers' configurations "
                     f"(seeds {', '.join(sorted({str(a.seed) for a in assignments}))})")
        _fit(prepared, FixedConfigs(assignments, _ended_without_record(prepared)), FIFOScheduler())
    with storage_faults(prepared.run_dir):
        table = prepared.table.write()
    prepared.lock.release()
    prepared.clock.mark("confirmation")
    return table


def check_complete(study: optuna.Study, table: pd.DataFrame) -> None:
    """Raise :class:`RunIncomplete` when a run ends with a trial of the ``study`` without a record in
    its results ``table`` (a --time-budget spent before the budget of trials is one way), or with
    every searched trial (every trial, when none was searched) failed."""
    ended = set(table.loc[table[Column.STATUS].isin(FINAL_STATUSES), Column.TRIAL_ID]) if len(table) else set()
    missing = [trial_folder_name(t.number) for t in study.get_trials(deepcopy=False)
               if trial_folder_name(t.number) not in ended]
    if missing:
        raise RunIncomplete(f"{len(missing)} trial(s) of the run's budget have no record ({', '.join(missing[:5])}); "
                            f"run the same command again to complete them")
    study_trials = search_trials(table)
    if study_trials.empty:
        return
    searched = study_trials[study_trials[Column.ORIGIN] == SEARCHED]
    for rows, which in ((searched, "searched trial"), (study_trials, "trial")):
        if len(rows) and (rows[Column.STATUS] == TrialStatus.FAILED).all():
            raise RunIncomplete(f"every {which} of the search failed ({len(rows)}); their reasons are listed above")


def _fit(prepared: PreparedRun, searcher: Any, scheduler: Any) -> None:
    """One Ray Tune session of ``searcher``'s trials; the results table is written as they end."""
    from ray import tune

    resources, sessions = prepared.resources, prepared.run_dir / TUNE_DIR
    trainable = tune.with_resources(tune.with_parameters(search_trial, context=prepared.context),
                                    {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    stop = SessionStop()
    with storage_faults(prepared.run_dir):
        _tune(prepared, trainable, searcher, scheduler, sessions, stop)
    if stop.fault:
        raise refused_write(stop.fault)  # the trials that were running resume then
    if stop.output_closed:
        raise BrokenPipeError(errno.EPIPE, "the output was closed by its reader")
    with storage_faults(prepared.run_dir):
        prepared.table.settle()
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
          stop: SessionStop) -> None:
    from ray import tune

    resources = prepared.resources
    tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,  # the searcher ends it
                                    max_concurrent_trials=resources.max_concurrent or None,
                                    time_budget_s=prepared.remaining(), reuse_actors=True),
        run_config=tune.RunConfig(name=f"session-{len(list(sessions.glob('session-*'))) + 1}",
                                  storage_path=str(sessions), verbose=0,
                                  callbacks=[results_callback(prepared.table, prepared.settings.objectives,
                                                              prepared.quiet, prepared.clock, stop)],
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


# Ray Tune's trial states, for the trials that have no record yet
_TUNE_STATUS = {"RUNNING": TrialStatus.RUNNING, "PENDING": TrialStatus.PENDING, "PAUSED": TrialStatus.PENDING,
                "TERMINATED": TrialStatus.PRUNED, "ERROR": TrialStatus.FAILED}


def results_callback(table: ResultsTable, objectives: tuple[str, ...], quiet: bool, clock: RunClock,
                     stop: SessionStop):
    from ray import tune

    class ResultsCallback(tune.Callback):
        """Keeps the results table up to date a trial at a time, writes it whenever a trial ends,
        and prints one progress line whenever a trial starts or ends. Ray calls these hooks before
        it changes the trial's state, so that trial is counted with the state it is entering."""

        def _update(self, trials: list, changing, status: TrialStatus) -> None:
            for trial in trials:
                if ASSIGNMENT in trial.config and trial is not changing:
                    table.live(trial.config[ASSIGNMENT], _TUNE_STATUS.get(trial.status, status))
            if STORAGE_FAULT in (changing.last_result or {}):  # not ended: it resumes when the run continues
                table.live(changing.config[ASSIGNMENT], TrialStatus.PENDING)
                frame = table.frame()
            elif status == TrialStatus.RUNNING:
                table.live(changing.config[ASSIGNMENT], status)
                frame = table.frame()
            else:
                table.ended(changing.config[ASSIGNMENT], status)
                frame = table.write()
            if not quiet and not stop.output_closed:
                try:
                    print(_progress_line(frame, objectives, clock.started), flush=True)
                except BrokenPipeError:  # Ray Tune would log it and go on: the session stops instead
                    stop.output_closed = True

        def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
            clock.trial_started()
            self._update(trials, trial, TrialStatus.RUNNING)

        def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials, trial, TrialStatus.PRUNED)  # unless its record says completed

        def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials, trial, TrialStatus.FAILED)

    return ResultsCallback()


def _progress_line(table: pd.DataFrame, objectives: tuple[str, ...], started: float) -> str:
    done = completed(table) if len(table) else table
    best = "  ".join(f"{o} {done[validation_column(o)].min():.4f}" for o in objectives
                     if validation_column(o) in done and len(done))
    elapsed = time.monotonic() - started
    return (f"[{int(elapsed // 60):3d}m{int(elapsed % 60):02d}s] trials: {status_counts(table)}"
            f" | validation front {len(validation_front(table, objectives)) if len(done) else 0}"
            f" | best on validation {best or '-'}")
