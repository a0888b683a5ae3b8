"""The search: Ray Tune runs trials, Optuna samples configurations, MO-ASHA stops weak trials early.

A run directory holds everything, so that rerunning the same command continues it::

    <run>/run.json          the run's settings, including the Optuna study name
    <run>/optuna.journal    the Optuna study (JournalStorage: optuna-dashboard opens it)
    <run>/sets/             the -C/-P sets every trial is measured on, made once
    <run>/tune/             Ray Tune's experiment state (what Tuner.restore reads)
    <run>/trials/<id>/      one trial: checkpoint, model, sparsity, record.json
    <run>/results.parquet   the results table, one row per trial (and results.csv)

Results are read from the trial folders, not from Ray's memory: a trial whose record is on disk
is never lost or run twice, whatever happened to the driver.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import uuid
import warnings
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import pandas as pd
import torch

from .budgets import get_budget
from .corruptions import BENCHMARK_CORRUPTIONS
from .evaluate import Predictor
from .generate import cached_sets
from .official import load_cifar_c
from .pareto import front
from .results import write_table
from .space import Space, check_objectives, load_space
from .trial import TrialConfig, run_trial, trial_dataset, write_record

SAMPLERS = ("tpe", "nsga2", "gp", "random")
SCHEDULERS = ("moasha", "none")
PROBE_IMAGES = 20  # per corruption, at severity 3: the cheap robustness estimate at MO-ASHA rungs
PROBE_SEVERITY = 3
ORIGIN = "origin"  # paper:NAME or searched: set when Optuna hands out the configuration


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """What defines a run; stored in ``run.json`` and checked when a run directory is reused."""

    space: str
    dataset: str
    budget: str
    budget_overrides: dict[str, int | None]
    objectives: tuple[str, ...]
    sampler: str
    scheduler: str
    trials: int
    seed: int
    study_name: str = ""

    def differences(self, other: SearchSettings) -> list[str]:
        """Settings that differ from ``other``'s, apart from the study name and the trial count
        (a continued run may ask for more trials)."""
        mine, theirs = (json.loads(json.dumps(dataclasses.asdict(x))) for x in (self, other))
        return [k for k in mine if k not in ("study_name", "trials") and mine[k] != theirs[k]]


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
    settings: SearchSettings
    sets: tuple[Path, Path]
    rungs: tuple[int, ...]
    threads: int
    data_dir: str | None


def finished_values(result: dict[str, Any], objectives: Sequence[str]) -> list[float] | None:
    """The objective values of a trial that completed its budget with all of them finite, else
    None: only such values are ever told to Optuna as a finished trial."""
    values = [result.get(o) for o in objectives]
    if result.get("status") == "completed" and all(v is not None and math.isfinite(v) for v in values):
        return values
    return None


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
    raise ValueError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")


def search_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Ray Tune trainable: one trial, reporting every epoch and its record at the end."""
    from ray import tune

    execute_trial(config, tune.get_context().get_trial_id(), context, tune.report)


def execute_trial(config: dict[str, Any], trial_id: str, context: TrialContext,
                  report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run one trial into ``trials/<trial_id>`` (resuming it if it has a checkpoint), reporting
    epochs and the final objectives through ``report``; returns the record."""
    torch.set_num_threads(context.threads)
    trial_dir = context.run_dir / "trials" / trial_id
    settings = context.settings
    config = dict(config)
    origin = config.pop(ORIGIN, "searched")
    tags = {"origin": origin, "protected": origin != "searched"}
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def on_epoch(epoch: dict[str, Any], predict: Predictor) -> None:
        metrics = {"epoch": epoch["epoch"], "train_loss": epoch["train_loss"], "rung_clean_error": epoch["clean_error"],
                   "status": "running", **tags}
        if epoch["epoch"] in context.rungs:
            metrics["rung_corruption_error"] = probe_corruption_error(predict, context.sets[0])
        report(metrics)

    try:
        trial = TrialConfig.create(config, dataset=settings.dataset, budget=settings.budget, seed=settings.seed,
                                   budget_overrides=settings.budget_overrides)
        record = run_trial(trial, trial_dir, context.sets, data_dir=context.data_dir, device=device, on_epoch=on_epoch)
        if record.get(ORIGIN) != origin:
            record = write_record(trial_dir, {**record, ORIGIN: origin})
    except Exception as error:  # noqa: BLE001 - a failing trial is a result: record it, the study goes on
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        record = write_record(trial_dir, {**config, ORIGIN: origin, "status": "failed", "epochs_completed": 0,
                                          "failure_reason": reason})
    report({"epoch": record.get("epochs_completed", 0), "status": record["status"], **tags,
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
    status: str  # running | pending | pruned | failed
    config: dict[str, Any]
    epoch: int
    error: str = ""

    @classmethod
    def from_tune_trial(cls, trial) -> KnownTrial:
        status = "running" if trial.status == "RUNNING" else "pending" if trial.status in ("PENDING", "PAUSED") \
            else "pruned" if trial.status == "TERMINATED" else "failed"
        return cls(trial.trial_id, status, dict(trial.config), (trial.last_result or {}).get("epoch", 0),
                   "ray reported an error" if status == "failed" else "")

    @classmethod
    def from_result(cls, result) -> KnownTrial:
        status = "failed" if result.error else "pruned"
        return cls(result.metrics.get("trial_id", ""), status, dict(result.config or {}),
                   result.metrics.get("epoch", 0), str(result.error).splitlines()[0] if result.error else "")


def results_table(run_dir: Path, known: list[KnownTrial] = ()) -> pd.DataFrame:
    """One row per trial: the records on disk, plus trials Ray knows of that have none (running,
    stopped early by the scheduler: ``pruned``, or killed by a Ray error)."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted((run_dir / "trials").glob("*/record.json")):
        record = json.loads(path.read_text())
        rows[path.parent.name] = {"trial_id": path.parent.name, ORIGIN: record.get(ORIGIN, "searched"),
                                  "budget_reached": record.get("epochs_completed", 0), **record}
    for trial in known:
        if trial.trial_id and trial.trial_id not in rows:
            rows[trial.trial_id] = {"trial_id": trial.trial_id, ORIGIN: "searched",
                                    "budget_reached": trial.epoch, **trial.config, "status": trial.status,
                                    "failure_reason": trial.error}
    return pd.DataFrame(list(rows.values()))


def _progress_line(table: pd.DataFrame, objectives: tuple[str, ...], started: float) -> str:
    counts = table["status"].value_counts() if len(table) else pd.Series(dtype=int)
    done = table[table["status"] == "completed"] if len(table) else table
    best = "  ".join(f"{o} {done[o].min():.4f}" for o in objectives if o in done and len(done))
    elapsed = time.monotonic() - started
    return (f"[{int(elapsed // 60):3d}m{int(elapsed % 60):02d}s] trials: {counts.get('completed', 0)} completed, "
            f"{counts.get('pruned', 0)} pruned, {counts.get('failed', 0)} failed, {counts.get('running', 0)} running, "
            f"{counts.get('pending', 0)} pending"
            f" | front {len(front(done, objectives)) if len(done) else 0} | best {best or '-'}")


def _results_callback(run_dir: Path, objectives: tuple[str, ...], quiet: bool):
    from ray import tune

    class ResultsTable(tune.Callback):
        """Rewrites the results table whenever a trial ends, and prints one progress line."""

        def __init__(self) -> None:
            self.started = time.monotonic()

        def _update(self, trials: list) -> None:
            table = results_table(run_dir, [KnownTrial.from_tune_trial(t) for t in trials])
            if len(table):
                write_table(table, run_dir / "results")
            if not quiet:
                print(_progress_line(table, objectives, self.started), flush=True)

        def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials)

        def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
            self._update(trials)

    return ResultsTable()


def _searcher(space: Space, settings: SearchSettings, storage: optuna.storages.BaseStorage):
    from ray.tune.search.optuna import OptunaSearch

    objectives = list(settings.objectives)

    class ParetoOptunaSearch(OptunaSearch):
        """OptunaSearch that tells Optuna the truth about trials that did not finish: stopped early
        -> PRUNED (never COMPLETE with low-budget values), failed -> FAIL."""

        def suggest(self, trial_id: str) -> dict | None:
            """Also tags the trial: ``paper:NAME`` when it is an enqueued paper configuration (a
            sampled configuration that happens to equal one stays ``searched``)."""
            params = super().suggest(trial_id)
            ot_trial = self._ot_trials[trial_id]
            enqueued = "fixed_params" in ot_trial.storage.get_trial_system_attrs(ot_trial._trial_id)
            paper = space.paper_name(params) if enqueued else None
            origin = f"paper:{paper}" if paper else "searched"
            ot_trial.set_user_attr("tune_trial_id", trial_id)  # links the study to the trial folder
            ot_trial.set_user_attr(ORIGIN, origin)
            return {**params, ORIGIN: origin}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            result = result or {}
            values = finished_values(result, objectives)
            if values is not None:
                state = optuna.trial.TrialState.COMPLETE
            elif error or result.get("status") == "failed":
                state, values = optuna.trial.TrialState.FAIL, None
            else:
                state, values = optuna.trial.TrialState.PRUNED, None
            try:
                self._ot_study.tell(ot_trial, values, state=state)
            except (RuntimeError, ValueError):  # told before the driver was interrupted
                pass
            self._completed_trials.add(trial_id)

    papers = [space.search_point(c) for c in space.paper_configs.values()]
    return ParetoOptunaSearch(space=space.suggest, metric=objectives, mode=["min"] * len(objectives),
                              sampler=make_sampler(settings.sampler, settings.seed), storage=storage,
                              study_name=settings.study_name, points_to_evaluate=papers or None)


def prepare_run(run_dir: Path, settings: SearchSettings) -> SearchSettings:
    """Start a run directory, or check that an existing one holds this run; returns the settings
    with the run's study name."""
    run_file = run_dir / "run.json"
    if run_file.is_file():
        raw = json.loads(run_file.read_text())
        saved = SearchSettings(**{**raw, "objectives": tuple(raw["objectives"])})
        differing = saved.differences(settings)
        if differing:
            key = differing[0]
            raise ValueError(f"run directory {run_dir} holds a run with {key}={getattr(saved, key)!r}, not "
                             f"{getattr(settings, key)!r}; choose another --out or repeat the original command")
        return dataclasses.replace(settings, study_name=saved.study_name)
    settings = dataclasses.replace(settings, study_name=f"ppsearch-{Path(settings.space).stem}-{uuid.uuid4().hex[:8]}")
    run_dir.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(dataclasses.asdict(settings), indent=1))
    return settings


def run_search(run_dir: str | Path, settings: SearchSettings, resources: Resources = Resources(), *,
               data_dir: str | None = None, quiet: bool = False) -> pd.DataFrame:
    """Run (or continue) the search in ``run_dir``; returns the results table."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # epoch reports carry no objectives
    import ray
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from .moasha import MOASHA
    from .moasha import rungs as moasha_rungs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run_dir).resolve()
    space = load_space(settings.space)
    check_objectives(settings.objectives, "--objectives")
    make_sampler(settings.sampler, settings.seed)
    if settings.scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {settings.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
    budget = get_budget(settings.budget, settings.budget_overrides)
    TrialConfig.create(space.defaults, dataset=settings.dataset, budget=settings.budget,
                       budget_overrides=settings.budget_overrides)
    settings = prepare_run(run_dir, settings)

    data = trial_dataset(settings.dataset, data_dir)
    n = None if budget.c_images is None or budget.p_images is None else max(budget.c_images, budget.p_images)
    sets = cached_sets(run_dir / "sets", data.test_images[:n], data.test_labels[:n], settings.dataset,
                       progress=not quiet)
    rungs = tuple(moasha_rungs(budget.epochs)) if settings.scheduler == "moasha" else ()
    context = TrialContext(run_dir, space, settings, sets, rungs, max(1, int(resources.cpus_per_trial)), data_dir)

    if not ray.is_initialized():
        ray.init(address=resources.address, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "optuna.journal")))
    trainable = tune.with_resources(tune.with_parameters(search_trial, context=context),
                                    {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    tune_dir = run_dir / "tune"
    if tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True)
    else:
        scheduler = MOASHA(budget.epochs) if settings.scheduler == "moasha" else FIFOScheduler()
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=_searcher(space, settings, storage), scheduler=scheduler,
                                        num_samples=len(space.paper_configs) + settings.trials,
                                        max_concurrent_trials=resources.max_concurrent or None,
                                        time_budget_s=resources.time_budget_s, reuse_actors=True),
            run_config=tune.RunConfig(name="tune", storage_path=str(run_dir), verbose=0,
                                      sync_config=tune.SyncConfig(sync_period=10),  # experiment state to disk
                                      callbacks=[_results_callback(run_dir, settings.objectives, quiet)],
                                      failure_config=tune.FailureConfig(max_failures=1)),
        )
    grid = tuner.fit()
    _settle_orphans(storage, context, resources)
    table = results_table(run_dir, [KnownTrial.from_result(r) for r in grid])
    write_table(table, run_dir / "results")
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
               if "tune_trial_id" in t.user_attrs]
    task = ray.remote(num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial)(execute_trial)
    records = ray.get([task.remote({**context.space.defaults, **t.params, ORIGIN: t.user_attrs.get(ORIGIN, "searched")},
                                   t.user_attrs["tune_trial_id"], context, lambda metrics: None) for t in orphans])
    for trial, record in zip(orphans, records):
        values = finished_values(record, settings.objectives)
        if values is not None:
            study.tell(trial.number, values)
        else:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
