"""The search: Ray Tune runs trials, Optuna samples configurations, MO-ASHA stops weak trials early.

The run directory (``ppsearch.rundir``) holds everything, so that rerunning the same command
continues it. Results are read from the trial folders, not from Ray's memory: a trial whose record is on disk
is never lost or run twice, whatever happened to the driver.
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch

from ..errors import UserError
from ..reporting.pareto import front
from ..robustness.corruptions import BENCHMARK_CORRUPTIONS
from ..robustness.evaluate import Predictor
from ..robustness.generate import cached_sets
from ..robustness.official import load_cifar_c
from ..rundir import (
    JOURNAL_FILE,
    RESULTS_STEM,
    RUN_FILE,
    SEARCHED,
    SETS_DIR,
    TRIALS_DIR,
    TUNE_DIR,
    Column,
    RunSettings,
    TrialStatus,
    check_objectives,
    is_paper,
    read_record,
    read_settings,
    status_counts,
    write_record,
    write_settings,
    write_table,
)
from ..training.budgets import get_budget
from ..training.trial import TrialConfig, TrialEpoch, run_trial, trial_dataset
from .moasha import EPOCH, MOASHA, PROTECTED, RUNG_METRICS
from .space import Space, load_space
from .study_searcher import TUNE_TRIAL_ID, StudySearcher, finished_values, open_study

SAMPLERS = ("tpe", "nsga2", "gp", "random")
SCHEDULERS = ("moasha", "none")
PROBE_IMAGES = 20  # per corruption, at severity 3: the cheap robustness estimate at MO-ASHA rungs
PROBE_SEVERITY = 3


@dataclasses.dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0: as many as the resources allow
    time_budget_s: float | None = None
    address: str | None = None


@dataclasses.dataclass(frozen=True)
class TrialContext:
    """What every trial of a run needs to know; shipped to the Ray workers once."""

    run_dir: Path
    space: Space
    settings: RunSettings
    sets: tuple[Path, Path]
    rungs: tuple[int, ...]
    threads: int
    data_dir: str | None


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":  # multivariate + grouped: suits conditional spaces
        with warnings.catch_warnings():  # both are flagged experimental; they are what TPE needs here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise UserError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")


def search_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Ray Tune trainable: one trial, reporting every epoch and its record at the end."""
    from ray import tune

    execute_trial(config, tune.get_context().get_trial_id(), context, tune.report)


def execute_trial(config: dict[str, Any], trial_id: str, context: TrialContext,
                  report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run one trial into ``trials/<trial_id>`` (resuming it if it has a checkpoint), reporting
    epochs and the final objectives through ``report``; returns the record."""
    torch.set_num_threads(context.threads)
    trial_dir = context.run_dir / TRIALS_DIR / trial_id
    settings = context.settings
    config = dict(config)
    origin = config.pop(Column.ORIGIN, SEARCHED)
    tags = {Column.ORIGIN: origin, PROTECTED: is_paper(origin)}
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def on_epoch(epoch: TrialEpoch, predict: Predictor) -> None:
        metrics = {EPOCH: epoch.report.epoch, "train_loss": epoch.report.train_loss,
                   RUNG_METRICS[0]: epoch.clean_error, Column.STATUS: TrialStatus.RUNNING, **tags}
        if epoch.report.epoch in context.rungs:
            metrics[RUNG_METRICS[1]] = probe_corruption_error(predict, context.sets[0])
        report(metrics)

    try:
        trial = TrialConfig.create(config, dataset=settings.dataset, budget=settings.budget, seed=settings.seed,
                                   budget_overrides=settings.budget_overrides)
        record = run_trial(trial, trial_dir, context.sets, data_dir=context.data_dir, device=device, on_epoch=on_epoch)
        if record.get(Column.ORIGIN) != origin:
            record = write_record(trial_dir, {**record, Column.ORIGIN: origin})
    except Exception as error:  # noqa: BLE001 - a failing trial is a result: record it, the study goes on
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        record = write_record(trial_dir, {**config, Column.ORIGIN: origin, Column.STATUS: TrialStatus.FAILED,
                                          Column.EPOCHS_COMPLETED: 0, Column.FAILURE_REASON: reason})
    report({EPOCH: record.get(Column.EPOCHS_COMPLETED, 0), Column.STATUS: record[Column.STATUS], **tags,
            **{k: record[k] for k in settings.objectives if k in record}})
    return record


def probe_corruption_error(predict: Predictor, c_dir: Path) -> float:
    """Mean error over the benchmark corruptions at one severity on a few images: cheap, noisy,
    enough to rank trials at a rung."""
    wrong = total = 0
    for name in BENCHMARK_CORRUPTIONS:
        images, labels = load_cifar_c(c_dir, name, PROBE_SEVERITY)
        wrong += (predict(images[:PROBE_IMAGES]) != labels[:PROBE_IMAGES]).sum().item()
        total += len(labels[:PROBE_IMAGES])
    return wrong / total


@dataclasses.dataclass(frozen=True)
class KnownTrial:
    """What Ray knows of a trial that may have no record on disk yet."""

    trial_id: str
    status: TrialStatus  # running, pending, pruned or failed
    config: dict[str, Any]
    epoch: int
    error: str = ""

    @classmethod
    def from_tune_trial(cls, trial) -> KnownTrial:
        status = _TUNE_STATUS.get(trial.status, TrialStatus.FAILED)
        return cls(trial.trial_id, status, dict(trial.config), (trial.last_result or {}).get(EPOCH, 0),
                   "ray reported an error" if status == TrialStatus.FAILED else "")

    @classmethod
    def from_result(cls, result) -> KnownTrial:
        status = TrialStatus.FAILED if result.error else TrialStatus.PRUNED
        return cls(result.metrics.get("trial_id", ""), status, dict(result.config or {}),
                   result.metrics.get(EPOCH, 0), str(result.error).splitlines()[0] if result.error else "")


# Ray Tune's trial states as ppsearch's (a trial Ray ended without a record was stopped early)
_TUNE_STATUS = {"RUNNING": TrialStatus.RUNNING, "PENDING": TrialStatus.PENDING, "PAUSED": TrialStatus.PENDING,
                "TERMINATED": TrialStatus.PRUNED, "ERROR": TrialStatus.FAILED}


def results_table(run_dir: Path, known: list[KnownTrial] = ()) -> pd.DataFrame:
    """One row per trial: the records on disk, plus trials Ray knows of that have none (running,
    stopped early by the scheduler: ``pruned``, or killed by a Ray error)."""
    rows: dict[str, dict[str, Any]] = {}
    for trial_dir in sorted(p for p in (run_dir / TRIALS_DIR).glob("*") if p.is_dir()):
        record = read_record(trial_dir)
        if record is not None:
            rows[trial_dir.name] = {Column.TRIAL_ID: trial_dir.name, Column.ORIGIN: record.get(Column.ORIGIN, SEARCHED),
                                    Column.BUDGET_REACHED: record.get(Column.EPOCHS_COMPLETED, 0), **record}
    for trial in known:
        if trial.trial_id and trial.trial_id not in rows:
            config = {k: v for k, v in trial.config.items() if k != Column.ORIGIN}
            rows[trial.trial_id] = {Column.TRIAL_ID: trial.trial_id,
                                    Column.ORIGIN: trial.config.get(Column.ORIGIN, SEARCHED),
                                    Column.BUDGET_REACHED: trial.epoch, **config, Column.STATUS: trial.status,
                                    Column.FAILURE_REASON: trial.error}
    return pd.DataFrame(list(rows.values()))


def _progress_line(table: pd.DataFrame, objectives: tuple[str, ...], started: float) -> str:
    done = table[table[Column.STATUS] == TrialStatus.COMPLETED] if len(table) else table
    best = "  ".join(f"{o} {done[o].min():.4f}" for o in objectives if o in done and len(done))
    elapsed = time.monotonic() - started
    return (f"[{int(elapsed // 60):3d}m{int(elapsed % 60):02d}s] trials: {status_counts(table)}"
            f" | front {len(front(done, objectives)) if len(done) else 0} | best {best or '-'}")


def results_callback(run_dir: Path, objectives: tuple[str, ...], quiet: bool):
    from ray import tune

    class ResultsTable(tune.Callback):
        """Rewrites the results table whenever a trial ends, and prints one progress line whenever
        a trial starts or ends. Ray calls these hooks before it changes the trial's state, so that
        trial is counted with the state it is entering (a record on disk says completed)."""

        def __init__(self) -> None:
            self.started = time.monotonic()

        def _update(self, trials: list, changing: str, status: TrialStatus) -> None:
            known = [dataclasses.replace(KnownTrial.from_tune_trial(t), status=status) if t.trial_id == changing
                     else KnownTrial.from_tune_trial(t) for t in trials]
            table = results_table(run_dir, known)
            if len(table) and status != TrialStatus.RUNNING:
                write_table(table, run_dir / RESULTS_STEM)
            if not quiet:
                print(_progress_line(table, objectives, self.started), flush=True)

        def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials, trial.trial_id, TrialStatus.RUNNING)

        def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials, trial.trial_id, TrialStatus.PRUNED)  # unless its record says completed

        def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials, trial.trial_id, TrialStatus.FAILED)

    return ResultsTable()


def prepare_run(run_dir: Path, settings: RunSettings) -> RunSettings:
    """Start a run directory, or check that an existing one holds this run; returns the settings
    with the run's study name."""
    if (run_dir / RUN_FILE).is_file():
        saved = read_settings(run_dir)
        differing = saved.differences(settings)
        if differing:
            key = differing[0]
            raise UserError(f"run directory {run_dir} holds a run with {key}={getattr(saved, key)!r}, not "
                             f"{getattr(settings, key)!r}; choose another --out or repeat the original command")
        return dataclasses.replace(settings, study_name=saved.study_name)
    settings = dataclasses.replace(settings, study_name=f"ppsearch-{Path(settings.space).stem}-{uuid.uuid4().hex[:8]}")
    write_settings(run_dir, settings)
    return settings


def run_search(run_dir: str | Path, settings: RunSettings, resources: Resources = Resources(), *,
               data_dir: str | None = None, quiet: bool = False) -> pd.DataFrame:
    """Run (or continue) the search in ``run_dir``; returns the results table."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # epoch reports carry no objectives
    import ray
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler


    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run_dir).resolve()
    space = load_space(settings.space)
    check_objectives(settings.objectives, "--objectives")
    make_sampler(settings.sampler, settings.seed)
    if settings.scheduler not in SCHEDULERS:
        raise UserError(f"unknown scheduler {settings.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
    budget = get_budget(settings.budget, settings.budget_overrides)
    TrialConfig.create(space.defaults, dataset=settings.dataset, budget=settings.budget,
                       budget_overrides=settings.budget_overrides)
    settings = prepare_run(run_dir, settings)

    data = trial_dataset(settings.dataset, data_dir)
    n = None if budget.c_images is None or budget.p_images is None else max(budget.c_images, budget.p_images)
    sets = cached_sets(run_dir / SETS_DIR, data.test_images[:n], data.test_labels[:n], settings.dataset,
                       progress=not quiet)
    scheduler = MOASHA(budget.epochs) if settings.scheduler == "moasha" else FIFOScheduler()
    rungs = tuple(scheduler.rungs) if settings.scheduler == "moasha" else ()
    context = TrialContext(run_dir, space, settings, sets, rungs, max(1, int(resources.cpus_per_trial)), data_dir)

    if not ray.is_initialized():
        ray.init(address=resources.address, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / JOURNAL_FILE)))
    trainable = tune.with_resources(tune.with_parameters(search_trial, context=context),
                                    {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    tune_dir = run_dir / TUNE_DIR
    if tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True)
    else:
        study = open_study(space, storage, settings.study_name, settings.objectives,
                           make_sampler(settings.sampler, settings.seed))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=StudySearcher(study, space, settings.objectives), scheduler=scheduler,
                                        num_samples=len(space.paper_configs) + settings.trials,
                                        max_concurrent_trials=resources.max_concurrent or None,
                                        time_budget_s=resources.time_budget_s, reuse_actors=True),
            run_config=tune.RunConfig(name="tune", storage_path=str(run_dir), verbose=0,
                                      sync_config=tune.SyncConfig(sync_period=10),  # experiment state to disk
                                      callbacks=[results_callback(run_dir, settings.objectives, quiet)],
                                      failure_config=tune.FailureConfig(max_failures=1)),
        )
    grid = tuner.fit()
    _settle_orphans(storage, context, resources)
    table = results_table(run_dir, [KnownTrial.from_result(r) for r in grid])
    write_table(table, run_dir / RESULTS_STEM)
    return table


def _settle_orphans(storage: optuna.storages.BaseStorage, context: TrialContext, resources: Resources) -> None:
    """Optuna trials still RUNNING after the search has ended were asked by a driver that was
    killed before Ray saved its state, so Ray will never run them. They are run here, into the
    folders they were given (so an interrupted one resumes from its checkpoint), and their results
    are told to Optuna: an interruption loses no configuration, the papers' included."""
    import ray

    settings = context.settings
    study = optuna.load_study(study_name=settings.study_name, storage=storage)
    orphans = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
               if TUNE_TRIAL_ID in t.user_attrs]
    task = ray.remote(num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial)(execute_trial)
    records = ray.get([task.remote({**context.space.defaults, **t.params,
                                    Column.ORIGIN: t.user_attrs.get(Column.ORIGIN, SEARCHED)},
                                   t.user_attrs[TUNE_TRIAL_ID], context, lambda metrics: None) for t in orphans])
    for trial, record in zip(orphans, records):
        values = finished_values(record, settings.objectives)
        if values is not None:
            study.tell(trial.number, values)
        else:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
