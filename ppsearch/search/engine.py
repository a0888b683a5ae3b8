"""The search: Ray Tune runs trials, Optuna samples configurations, MO-ASHA stops weak trials early.

The run directory (``ppsearch.rundir``) holds everything, so that rerunning the same command
continues it: the Optuna study (the search's state and budget), one folder per trial named after its
number in the study (epoch checkpoints, then its record), the -C/-P sets. Ray Tune's own state is not
needed to continue: every driver starts a fresh Tuner whose searcher first hands out the trials an
interrupted driver left unfinished. Results are read from the trial folders, not from Ray's memory.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch

from ..config import CONFIG_KEYS
from ..data.streaming import DataAccess
from ..errors import UserError
from ..robustness.corruptions import BENCHMARK_CORRUPTIONS
from ..robustness.evaluate import Predictor, batched_logits
from ..robustness.metrics import flip_probability, fr_table, get_protocol
from ..robustness.official import load_cifar_c
from ..robustness.perturbations import ALL_PERTURBATIONS
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
    repair_journal,
    status_counts,
    validation_column,
    write_record,
    write_settings,
    write_table,
)
from ..selection.pareto import validation_front
from ..training.trial import (
    EvaluationSets,
    TrialConfig,
    TrialEpoch,
    check_streaming,
    evaluation_sets,
    run_trial,
    trial_dataset,
)
from .confirmation import check_confirmation, next_confirmations
from .moasha import EPOCH, MOASHA, PROTECTED, RUNG_METRICS, rung_metrics
from .seeding import seeded_designs
from .space import Space, load_space
from .strategies import Scheduler, check_scheduler, make_sampler
from .study_searcher import STUDY_TRIAL, FixedConfigs, StudySearcher, open_study

PROBE_IMAGES = 20  # per corruption, at severity 3: the cheap robustness estimate at MO-ASHA rungs
PROBE_SEVERITY = 3
PROBE_SEQUENCES = 3  # per perturbation (some 30 frames each): the cheap flip rate at MO-ASHA rungs


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
    sets: EvaluationSets
    rungs: tuple[int, ...]
    threads: int
    access: DataAccess
    trials_per_node: dict[str, int]  # Ray node id: trials it runs at once (they share its memory budget)


def search_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Ray Tune trainable: one trial, reporting every epoch and its record at the end."""
    import ray
    from ray import tune

    execute_trial({**config, Column.NODE: ray.get_runtime_context().get_node_id()}, context, tune.report)


def execute_trial(config: dict[str, Any], context: TrialContext,
                  report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run one trial into ``trials/<its trial id>`` (resuming it if it has a checkpoint, reading it
    back if it has a record), reporting epochs and the final objectives (measured on the validation
    split) through ``report``; returns the record. Besides the configuration keys, ``config`` names
    the trial's id, origin and node, and for a confirmation its seed and the trial it repeats."""
    torch.set_num_threads(context.threads)
    settings = context.settings
    trial_id = config[Column.TRIAL_ID]
    trial_dir = context.run_dir / TRIALS_DIR / trial_id
    origin = config.get(Column.ORIGIN, SEARCHED)
    bookkeeping = {Column.ORIGIN: origin, Column.NODE: config.get(Column.NODE, ""),
                   Column.CONFIG_ID: config.get(Column.CONFIG_ID, trial_id)}
    seed = config.get(Column.SEED, settings.seed)
    keys = {k: v for k, v in config.items() if k in CONFIG_KEYS}
    tags = {Column.ORIGIN: origin, PROTECTED: is_paper(origin)}
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def on_epoch(epoch: TrialEpoch) -> None:
        # Only the scheduler reads epoch results, at its rungs: every other epoch is neither
        # measured nor reported (each report is a round trip through Ray Tune's driver).
        if epoch.report.epoch in context.rungs:
            report({EPOCH: epoch.report.epoch, "train_loss": epoch.report.train_loss, Column.STATUS: TrialStatus.RUNNING,
                    **tags, **rung_probes(epoch, context.sets, settings)})

    try:
        trial = trial_config(settings, keys, seed)
        sharers = context.trials_per_node.get(bookkeeping[Column.NODE], max(context.trials_per_node.values()))
        record = run_trial(trial, trial_dir, context.sets, access=dataclasses.replace(context.access, sharers=sharers),
                           device=device, on_epoch=on_epoch)
        if any(record.get(k) != v for k, v in bookkeeping.items() if k != Column.NODE) or Column.NODE not in record:
            record = write_record(trial_dir, {**record, **bookkeeping})
    except Exception as error:  # noqa: BLE001 - a failing trial is a result: record it, the study goes on
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        record = write_record(trial_dir, {**keys, **bookkeeping, Column.SEED: seed, Column.STATUS: TrialStatus.FAILED,
                                          Column.EPOCHS_COMPLETED: 0, Column.FAILURE_REASON: reason})
    report({EPOCH: record.get(Column.EPOCHS_COMPLETED, 0), Column.STATUS: record[Column.STATUS], **tags,
            **{o: record[validation_column(o)] for o in settings.objectives if validation_column(o) in record}})
    return record


def trial_config(settings: RunSettings, config: dict[str, Any], seed: int) -> TrialConfig:
    """A trial of the run: ``config`` under the run's dataset, budget, protocol and validation split."""
    return TrialConfig.create(config, dataset=settings.dataset, budget=settings.budget, seed=seed,
                              budget_overrides=settings.budget_overrides, protocol=settings.protocol,
                              validation_fraction=settings.validation_fraction, validation_seed=settings.seed,
                              image_size=settings.image_size)


def rung_probes(epoch: TrialEpoch, sets: EvaluationSets, settings: RunSettings) -> dict[str, float]:
    """What MO-ASHA ranks a rung on: a cheap probe of each objective of the run, measured on the
    selection split's sets, and the clean error in any case (reports place a pruned trial at it)."""
    wanted = {Column.RUNG_CLEAN_ERROR, *rung_metrics(settings.objectives)}
    c_dir, p_dir = sets.selection
    values = {Column.RUNG_CLEAN_ERROR: epoch.clean_error}
    if wanted & {Column.RUNG_CORRUPTION_ERROR, Column.RUNG_CORRUPTION_INCREASE}:
        corruption = probe_corruption_error(epoch.predict, c_dir)
        values.update({Column.RUNG_CORRUPTION_ERROR: corruption,
                       Column.RUNG_CORRUPTION_INCREASE: corruption - epoch.clean_error})
    if Column.RUNG_FLIP_RATE in wanted:
        values[Column.RUNG_FLIP_RATE] = probe_flip_rate(epoch.predict, p_dir, settings.protocol, settings.dataset)
    return {k: v for k, v in values.items() if k in wanted}


def probe_corruption_error(predict: Predictor, c_dir: Path) -> float:
    """Mean error over the benchmark corruptions at one severity on a few images: cheap, noisy,
    enough to rank trials at a rung."""
    wrong = total = 0
    for name in BENCHMARK_CORRUPTIONS:
        images, labels = load_cifar_c(c_dir, name, PROBE_SEVERITY)
        wrong += (predict(images[:PROBE_IMAGES]) != labels[:PROBE_IMAGES]).sum().item()
        total += len(labels[:PROBE_IMAGES])
    return wrong / total


def probe_flip_rate(predict: Predictor, p_dir: Path, protocol: str, dataset: str) -> float:
    """Mean flip rate over the perturbations that ``protocol``'s mFR averages, each on its first
    few sequences of the -P set in ``p_dir`` (normalised as mFR is, so that no perturbation's
    scale outweighs the others): cheap, noisy, enough to rank trials at a rung."""
    # memory-mapped, so that only the probed sequences are read (load_cifar_p reads every one)
    files = {name: np.load(p_dir / f"{name}.npy", mmap_mode="r") for name in ALL_PERTURBATIONS}
    chosen = get_protocol(protocol).setup(dataset, max(files[ALL_PERTURBATIONS[0]].shape[2:4]))
    sequences = {name: torch.from_numpy(np.array(files[name][:PROBE_SEQUENCES])) for name in chosen.perturbations}
    flips = {name: flip_probability(logits.argmax(-1), name, protocol)
             for name, logits in batched_logits(predict, sequences.items()).items()}
    return float(fr_table(flips, chosen.fr_normaliser)["fr"].mean())


def record_ended_trial(run_dir: Path, config: dict[str, Any], status: TrialStatus, last: dict[str, Any],
                       reason: str) -> None:
    """The record of a trial that ended without writing one: stopped early by the scheduler (with
    the values of the rung it reached), or lost to a Ray error. A record the trial wrote itself is
    kept."""
    trial_dir = run_dir / TRIALS_DIR / config[Column.TRIAL_ID]
    if read_record(trial_dir) is None:
        write_record(trial_dir, {**{k: v for k, v in config.items() if k != STUDY_TRIAL}, Column.STATUS: status,
                                 Column.EPOCHS_COMPLETED: last.get(EPOCH, 0), Column.FAILURE_REASON: reason,
                                 **{m: last[m] for m in RUNG_METRICS if m in last}})


# Ray Tune's trial states, for the trials that have no record yet
_TUNE_STATUS = {"RUNNING": TrialStatus.RUNNING, "PENDING": TrialStatus.PENDING, "PAUSED": TrialStatus.PENDING,
                "TERMINATED": TrialStatus.PRUNED, "ERROR": TrialStatus.FAILED}


def results_table(run_dir: Path, live: dict[str, tuple[TrialStatus, dict[str, Any]]] | None = None) -> pd.DataFrame:
    """One row per trial: the records in the trial folders, plus ``live`` trials (trial id ->
    status and configuration) that have no record yet. A confirmation's row names the trial it
    repeats as its configuration id; a search trial's configuration id is its own id."""
    rows: dict[str, dict[str, Any]] = {}
    for trial_dir in sorted(p for p in (run_dir / TRIALS_DIR).glob("*") if p.is_dir()):
        record = read_record(trial_dir)
        if record is not None:
            rows[trial_dir.name] = {Column.TRIAL_ID: trial_dir.name, Column.ORIGIN: record.get(Column.ORIGIN, SEARCHED),
                                    Column.CONFIG_ID: trial_dir.name,
                                    Column.BUDGET_REACHED: record.get(Column.EPOCHS_COMPLETED, 0), **record}
    for name, (status, config) in (live or {}).items():
        if name not in rows:
            rows[name] = {Column.CONFIG_ID: name, **{k: v for k, v in config.items() if k != STUDY_TRIAL},
                          Column.STATUS: status}
    return pd.DataFrame(list(rows.values()))


def _progress_line(table: pd.DataFrame, objectives: tuple[str, ...], started: float) -> str:
    done = table[table[Column.STATUS] == TrialStatus.COMPLETED] if len(table) else table
    best = "  ".join(f"{o} {done[validation_column(o)].min():.4f}" for o in objectives
                     if validation_column(o) in done and len(done))
    elapsed = time.monotonic() - started
    return (f"[{int(elapsed // 60):3d}m{int(elapsed % 60):02d}s] trials: {status_counts(table)}"
            f" | validation front {len(validation_front(table, objectives)) if len(done) else 0}"
            f" | best on validation {best or '-'}")


def results_callback(run_dir: Path, objectives: tuple[str, ...], quiet: bool):
    from ray import tune

    class ResultsTable(tune.Callback):
        """Rewrites the results table whenever a trial ends, and prints one progress line whenever
        a trial starts or ends. Ray calls these hooks before it changes the trial's state, so that
        trial is counted with the state it is entering (a record on disk says completed)."""

        def __init__(self) -> None:
            self.started = time.monotonic()

        def _update(self, trials: list, changing: str, status: TrialStatus) -> None:
            live = {t.config[Column.TRIAL_ID]: (status if t.trial_id == changing else _TUNE_STATUS.get(t.status, status),
                                                dict(t.config)) for t in trials if Column.TRIAL_ID in t.config}
            table = results_table(run_dir, live)
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


def settings_for_run(run_dir: Path, settings: RunSettings) -> RunSettings:
    """The settings of the run in ``run_dir``: an existing run's (it must be this run), or new ones
    with a fresh study name. Nothing is written."""
    if (run_dir / RUN_FILE).is_file():
        saved = read_settings(run_dir)
        differing = saved.differences(settings)
        if differing:
            key = differing[0]
            raise UserError(f"run directory {run_dir} holds a run with {key}={getattr(saved, key)!r}, not "
                            f"{getattr(settings, key)!r}; choose another --out or repeat the original command")
        return dataclasses.replace(settings, study_name=saved.study_name)
    return dataclasses.replace(settings, study_name=f"ppsearch-{Path(settings.space).stem}-{uuid.uuid4().hex[:8]}")


def connect_ray(resources: Resources) -> dict[str, int]:
    """Start a local Ray or join ``resources.address``, and check that some node can run a trial
    with the resources asked for (else a trial would wait forever); returns how many trials each
    node (by id) can run at once."""
    import ray

    if resources.address and resources.address != "auto":
        if resources.address.startswith("ray://"):
            raise UserError(f"--address {resources.address}: Ray Client addresses are not supported; run ppsearch "
                            f"on the cluster with `ray job submit -- ppsearch run --address auto ...`")
        host, _, port = resources.address.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--address {resources.address!r}: expected auto or HOST:PORT of the Ray head (GCS)")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as error:
            raise UserError(f"--address {resources.address}: no Ray cluster answers there ({error.strerror or error}); "
                            f"start one with `ray start --head` or correct the address") from None
    if not ray.is_initialized():
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            # without --address, a Ray of this run's own, even where another is running on the machine
            ray.init(address=resources.address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
        except ConnectionError as error:
            raise UserError(f"--address {resources.address}: {str(error).splitlines()[0]}") from None
        finally:  # Ray's native handler aborts the process on SIGTERM; the caller's stops it cleanly
            signal.signal(signal.SIGTERM, sigterm)
    alive = {node["NodeID"]: node["Resources"] for node in ray.nodes() if node["Alive"]}

    def fitting(node: dict[str, float]) -> float:
        return min(node.get("CPU", 0) // resources.cpus_per_trial,
                   node.get("GPU", 0) // resources.gpus_per_trial if resources.gpus_per_trial else math.inf)

    cap = resources.max_concurrent or math.inf
    trials_per_node = {node_id: int(min(fits, cap)) for node_id, node in alive.items() if (fits := fitting(node)) >= 1}
    if not trials_per_node:
        largest = max(alive.values(), key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        raise UserError(f"no node of the Ray cluster can run a trial with {resources.cpus_per_trial:g} CPUs and "
                        f"{resources.gpus_per_trial:g} GPUs (the largest has {largest.get('CPU', 0):g} CPUs and "
                        f"{largest.get('GPU', 0):g} GPUs); lower --cpus-per-trial/--gpus-per-trial or add nodes")
    return trials_per_node


def run_search(run_dir: str | Path, settings: RunSettings, resources: Resources = Resources(), *,
               access: DataAccess = DataAccess(), quiet: bool = False) -> pd.DataFrame:
    """Run (or continue) the search in ``run_dir``, then confirm its validation front and the
    papers' configurations with further seeds as ``settings.confirm_seeds`` says
    (``confirmation``); returns the results table."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # epoch reports carry no objectives
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C interrupts the run (exit 130), it does not end it
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    started = time.monotonic()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run_dir).resolve()
    space = load_space(settings.space)
    check_objectives(settings.objectives, "--objectives")
    make_sampler(settings.sampler, settings.seed)
    check_scheduler(settings.scheduler)
    check_confirmation(settings)
    defaults = trial_config(settings, space.defaults, settings.seed)
    settings = settings_for_run(run_dir, settings)
    journal = run_dir / JOURNAL_FILE
    # the designs of earlier fronts are enqueued when the study is created; a continued run has them
    seeded = seeded_designs(space, settings.objectives, () if journal.is_file() else settings.seed_from)
    data = trial_dataset(settings.dataset, access, defaults.image_size)  # everything is checked before anything is written
    check_streaming(defaults, data)
    trials_per_node = connect_ray(resources)
    if not (run_dir / RUN_FILE).is_file():
        write_settings(run_dir, settings)
    repaired = repair_journal(journal)
    if repaired:
        print(f"ppsearch: {repaired}", file=sys.stderr, flush=True)
    sets = evaluation_sets(run_dir / SETS_DIR, defaults, data, progress=not quiet)
    # the trials load their own copies, sharing each node's memory budget; the driver keeps none
    del data
    trial_dataset.cache_clear()
    scheduler = MOASHA(defaults.epochs, rung_metrics(settings.objectives), run_dir) \
        if settings.scheduler == Scheduler.MOASHA else FIFOScheduler()
    rungs = tuple(scheduler.rungs) if settings.scheduler == Scheduler.MOASHA else ()
    context = TrialContext(run_dir, space, settings, sets, rungs, max(1, int(resources.cpus_per_trial)), access,
                           trials_per_node)

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = open_study(space, storage, settings.study_name, settings.objectives,
                       make_sampler(settings.sampler, settings.seed), seeded.enqueued)
    if (seeded.enqueued or seeded.skipped) and not quiet:
        print(f"seeded from {len(settings.seed_from)} earlier run(s): {len(seeded.enqueued)} front design(s) "
              f"trained after the papers' configurations", flush=True)
        for line in seeded.skipped:
            print(f"  {line}", flush=True)
    on_ended = functools.partial(record_ended_trial, run_dir)
    trainable = tune.with_resources(tune.with_parameters(search_trial, context=context),
                                    {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    sessions = run_dir / TUNE_DIR

    def fit(searcher, scheduler, time_budget_s: float | None) -> None:
        tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,  # the searcher ends it
                                        max_concurrent_trials=resources.max_concurrent or None,
                                        time_budget_s=time_budget_s, reuse_actors=True),
            run_config=tune.RunConfig(name=f"session-{len(list(sessions.glob('session-*'))) + 1}",
                                      storage_path=str(sessions), verbose=0,
                                      callbacks=[results_callback(run_dir, settings.objectives, quiet)],
                                      failure_config=tune.FailureConfig(max_failures=1)),
        ).fit()

    def remaining() -> float | None:
        return None if resources.time_budget_s is None else resources.time_budget_s - (time.monotonic() - started)

    fit(StudySearcher(study, space, settings.objectives, settings.trials, on_ended), scheduler,
        resources.time_budget_s)
    while (left := remaining()) is None or left > 0:
        trials = next_confirmations(results_table(run_dir), settings)
        if not trials:
            break
        if not quiet:
            print(f"confirming: {len(trials)} trial(s) of the validation front and the papers' configurations "
                  f"(seeds {', '.join(sorted({str(t[Column.SEED]) for t in trials}))})", flush=True)
        fit(FixedConfigs(trials, on_ended), FIFOScheduler(), left)
    table = results_table(run_dir)
    write_table(table, run_dir / RESULTS_STEM)
    return table

