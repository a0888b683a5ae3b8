"""A search at scale, simulated: what the driver spends per trial as a run grows to 2,000 trials.

The real engine runs one search into a fresh run directory: ``prepare_run`` and ``search`` (the
StudySearcher and its Optuna study in the journal, MO-ASHA keeping its rungs in the run directory,
the results table and its callback with the progress lines, sent to /dev/null) and ``confirm``
(``--confirm-seeds 1``: it only writes the final table), on the resnet-cifar space (14 papers first,
3 objectives) over Fashion-MNIST, budget smoke with 10 epochs (MO-ASHA's rungs at 1, 3 and 9). Ray
is started with ``--cpus`` declared CPUs and each trial asks for one, so that many trials can run at
once on this small machine. Only the trial function is a stand-in: it trains nothing, sleeps
``--sleep`` seconds in proportion to the epochs it reaches, reports synthetic probes at every rung
(so MO-ASHA ranks and stops trials) and ends as ``execute_trial`` does: a record as wide as a real one
(configuration, every metric on both splits, the per-corruption and per-perturbation columns) and
the final report. Its objectives are a fixed function of the configuration plus noise (push-pull
placement trades clean error for robustness), so fronts and rankings are not trivial.

The run is measured as it passes ``--at`` trials ended (papers included; it goes on ``--cpus``
trials further, so that the last point is not the run's drain), each figure over the last 10% of
trials before that point (450 to 500 for 500), so one run of the largest size gives the whole curve:
  * wall/trial: wall milliseconds per trial ended (the run's throughput); trials at once: how many
    ran, on average;
  * driver CPU/trial: the CPU time of the driver process (all its threads, Ray Tune's included) per
    trial ended;
  * the driver's parts, timed by wrappers installed in this process (nothing in ppsearch changes),
    in CPU milliseconds of the driver's thread per call (robust to the machine's load): the
    searcher's ``suggest`` and the sampler's share of it, the searcher's ``on_trial_complete`` (the
    study's tell), MO-ASHA's decision on a rung result, the results callback per trial event (table
    update, progress line, table files), the table files alone (``ResultsTable.write``; nan where
    none was written in the window); the journal's appends per trial and their wall milliseconds
    (each waits for fsync);
  * the journal's size then, and ``ppsearch report``'s wall time (``write_report``, after the run)
    on a copy of the run taken then (settings, journal, the results table as the driver held it);
  * the load average (other work on the machine and this benchmark's own Ray) when it was passed.
Then where the driver's thread spent its CPU over the whole run, part by part: the first bottleneck.

With ``--searcher-alone``, only the StudySearcher runs, without Ray or trials, for each sampler of
``--sampler`` (comma-separated): each trial suggested, then told complete with its synthetic
objectives, on a study in a journal; the same figures of suggest, sampler, tell and appends, to
2,000 trials in minutes, for the sampler choice.

    python benchmarks/bench_scale.py [--at 100,500,1000,2000] [--cpus 16] [--sleep 20] [--sampler tpe]
        [--max-concurrent 0]
    python benchmarks/bench_scale.py --searcher-alone [--at 100,500,1000,2000] [--sampler tpe,nsga2,random]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from ppsearch.reporting.report import write_report
from ppsearch.robustness.names import BENCHMARK_CORRUPTIONS, SEVERITIES, TEST_PERTURBATIONS
from ppsearch.rundir import (
    CE_PREFIX,
    ERROR_PREFIX,
    FP_PREFIX,
    JOURNAL_FILE,
    RESULTS_STEM,
    RUN_FILE,
    SUMMARY_METRICS,
    T5D_PREFIX,
    TRIALS_DIR,
    VALIDATION_PREFIX,
    Column,
    ResultsTable,
    RunSettings,
    TrialStatus,
    is_paper,
    settings_for_run,
    start_run,
    validation_column,
    write_record,
    write_table,
)
from ppsearch.search import engine
from ppsearch.search.cluster import Resources
from ppsearch.search.moasha import EPOCH, MOASHA, PROTECTED, RUNG_PROBES
from ppsearch.search.space import load_space
from ppsearch.search.strategies import make_sampler
from ppsearch.search.study_searcher import ASSIGNMENT, StudySearcher, enqueue_origins
from ppsearch.training.trial import TrialConfig

SPACE = "resnet-cifar"
EPOCHS = 10  # MO-ASHA's rungs at 1, 3 and 9 epochs
WINDOW = 0.1  # a figure at N trials ended: over the trials from N - 10% to N


@dataclasses.dataclass(frozen=True)
class StandInContext:
    """What the stand-in trial needs (it replaces the engine's TrialContext, so that the trial
    workers import neither torch nor the trainer: dozens of them would not fit this machine's memory)."""

    run_dir: Path
    objectives: tuple[str, ...]
    rungs: tuple[int, ...]
    sleep: float  # seconds of a trial that reaches the last epoch
    run_fields: dict[str, Any]  # the record's columns every trial of the run shares (dataset, budget, sizes)


def unit_values(text: str, count: int) -> np.ndarray:
    """``count`` numbers in [0, 1) fixed by ``text`` (the same in every process, unlike ``hash``)."""
    digest = hashlib.sha256(text.encode()).digest()
    return np.frombuffer(digest[:4 * count], dtype=np.uint32) / 2.0 ** 32


def synthetic_objectives(configuration: dict[str, Any], trial_id: str) -> dict[str, float]:
    """Clean error, corruption error and flip rate of ``configuration``: a fixed effect of each of its
    values, push-pull trading clean error for robustness, and noise of the trial."""
    effect = np.zeros(3)
    for key, value in sorted(configuration.items()):
        if isinstance(value, float):
            effect += 0.01 * math.log(value) ** 2  # a continuous optimum at 1 (alpha, scale)
        else:
            effect += 0.02 * unit_values(f"{key}={value}", 3)
    robust = configuration.get("placement", "none") != "none"
    noise = 0.005 * (unit_values(trial_id, 3) - 0.5)
    clean, corruption, flips = np.array([0.08, 0.9, 0.5]) + effect + noise + np.array([0.03, -0.2, -0.15]) * robust
    return {Column.CLEAN_ERROR: clean, Column.MCE: corruption, Column.MFR: flips, Column.RELATIVE_MCE: corruption - clean,
            Column.CORRUPTION_ERROR: corruption * 0.6, Column.MT5D: flips * 0.8}


def synthetic_record(assignment: Any, context: StandInContext, slept: float) -> dict[str, Any]:
    """A completed trial's record with the columns ``run_trial`` writes, values synthetic."""
    values = synthetic_objectives(assignment.configuration, assignment.trial_id)
    test = {m: float(values[m]) for m in SUMMARY_METRICS}
    spread = unit_values(f"{assignment.trial_id}/columns", 8)
    return {**context.run_fields, **assignment.configuration, **assignment.identity(),
            Column.STATUS: TrialStatus.COMPLETED, Column.FAILURE_REASON: "",
            Column.PARAMS: 270_000 + int(1e5 * spread[0]), Column.FLOPS: 4e7 + 6e7 * spread[1], **test,
            Column.CE_NORMALISER: "seed paper CIFAR-10 AlexNet (Table 4/8)",
            Column.FR_NORMALISER: "seed paper CIFAR-10 AlexNet (Table 4/8)", Column.T5D_NORMALISER: "none",
            Column.RCE_CLEAN_ERROR: test[Column.CLEAN_ERROR], Column.RCE_IMAGES: 10,
            **{f"{ERROR_PREFIX}{c}/{s}": test[Column.CORRUPTION_ERROR] * (0.5 + 0.15 * s)
               for c in BENCHMARK_CORRUPTIONS for s in SEVERITIES},
            **{f"{CE_PREFIX}{c}": test[Column.MCE] * (0.8 + 0.4 * spread[2]) for c in BENCHMARK_CORRUPTIONS},
            **{f"{FP_PREFIX}{p}": 0.01 * test[Column.MFR] for p in TEST_PERTURBATIONS},
            **{f"{T5D_PREFIX}{p}": test[Column.MT5D] for p in TEST_PERTURBATIONS},
            **{f"{VALIDATION_PREFIX}{m}": v * (0.98 + 0.04 * spread[3]) for m, v in test.items()},
            Column.FROST: "procedural (ppsearch)", Column.FIRST_LAYER_WEIGHT_SPARSITY: float(spread[4]),
            Column.FIRST_LAYER_RESPONSE_SPARSITY: float(spread[5]), Column.EVAL_SECONDS: 0.0,
            Column.EPOCHS_COMPLETED: context.run_fields["epochs"], Column.TRAIN_SECONDS: slept,
            Column.SKIPPED_IMAGES: 0, Column.IMAGES_PER_SECOND: 0.0,
            Column.TRIAL_DIR: str(context.run_dir / TRIALS_DIR / assignment.trial_id),
            Column.FINISHED_AT: datetime.now(UTC).isoformat(timespec="seconds"), Column.NODE: ""}


def stand_in_trial(config: dict[str, Any], context: StandInContext) -> None:
    """The engine's trainable, as the driver sees it: rung reports, then a record and the final report."""
    from ray import tune

    assignment = config[ASSIGNMENT]
    values = synthetic_objectives(assignment.configuration, assignment.trial_id)
    tags = {Column.ORIGIN: assignment.origin, PROTECTED: is_paper(assignment.origin)}
    epochs = context.run_fields["epochs"]
    reached = 0
    for rung in context.rungs:
        time.sleep(context.sleep * (rung - reached) / epochs)
        reached = rung
        early = 1 + 0.3 / rung  # a probe measured early is worse, and noisier
        tune.report({EPOCH: rung, Column.STATUS: TrialStatus.RUNNING, **tags,
                     **{RUNG_PROBES[o]: float(values[o]) * early * (1 + 0.05 * unit_values(f"{assignment.trial_id}/{rung}", 1)[0])
                        for o in context.objectives}})
    time.sleep(context.sleep * (epochs - reached) / epochs)
    record = write_record(context.run_dir / TRIALS_DIR / assignment.trial_id,
                          synthetic_record(assignment, context, context.sleep))
    tune.report({EPOCH: epochs, Column.STATUS: record[Column.STATUS], **tags,
                 **{o: record[validation_column(o)] for o in context.objectives}})


def _clocked(function: Callable, record: Callable[[float, float], None]) -> Callable:
    """``function``, handing ``record`` the thread's CPU seconds and the wall seconds of every call."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            record(time.thread_time() - cpu, time.perf_counter() - wall)
    return wrapper


class Timings:
    """The driver's parts, call by call, and the run's clock at every trial end; every call is
    stamped with the number of trials ended before it, so that a figure can be taken over a window."""

    def __init__(self) -> None:
        self.ended = 0
        self.calls: dict[str, list[tuple[int, float, float]]] = defaultdict(list)  # (ended, CPU s, wall s)
        self.ends: list[tuple[float, float, int]] = []  # at the end of trial k+1: (wall, process CPU, trials running)
        self.sampler_cpu = self.sampler_wall = 0.0

    def timed(self, name: str, function: Callable) -> Callable:
        return _clocked(function, lambda cpu, wall: self.calls[name].append((self.ended, cpu, wall)))

    def with_sampler_share(self, name: str, function: Callable) -> Callable:
        """``function`` timed as ``name``, and the sampler's part of each call as ``name: sampler``."""
        timed = self.timed(name, function)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            self.sampler_cpu = self.sampler_wall = 0.0
            try:
                return timed(*args, **kwargs)
            finally:
                self.calls[f"{name}: sampler"].append((self.ended, self.sampler_cpu, self.sampler_wall))
        return wrapper

    def sampler_method(self, function: Callable) -> Callable:
        return _clocked(function, self._add_sampler_time)

    def _add_sampler_time(self, cpu: float, wall: float) -> None:
        self.sampler_cpu += cpu
        self.sampler_wall += wall

    def trial_ended(self, trials: list) -> None:
        self.ended += 1
        self.ends.append((time.perf_counter(), time.process_time(), sum(t.status == "RUNNING" for t in trials)))

    def window(self, at: int) -> range:
        return range(max(0, at - max(1, int(at * WINDOW))), at)

    def per_call(self, name: str, at: int, wall: bool = False) -> float:
        """Mean milliseconds (CPU, or ``wall``) of ``name``'s calls in the window before ``at`` trials ended."""
        window = self.window(at)
        seconds = [c[2 if wall else 1] for c in self.calls.get(name, []) if c[0] in window]
        return 1e3 * float(np.mean(seconds)) if seconds else math.nan

    def calls_per_trial(self, name: str, at: int) -> float:
        window = self.window(at)
        return sum(c[0] in window for c in self.calls.get(name, [])) / len(window)

    def per_trial(self, at: int) -> tuple[float, float, float]:
        """Wall and driver CPU milliseconds per trial ended, and trials running, in the window before ``at``."""
        window = self.window(at)
        before = self.ends[window.start - 1] if window.start else self.ends[0]
        intervals = max(1, len(window) if window.start else len(window) - 1)
        last = self.ends[at - 1]
        running = float(np.mean([self.ends[k][2] for k in window]))
        return 1e3 * (last[0] - before[0]) / intervals, 1e3 * (last[1] - before[1]) / intervals, running

    def total_cpu(self, name: str) -> float:
        return float(sum(c[1] for c in self.calls.get(name, [])))


@contextlib.contextmanager
def patched(target: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


@contextlib.contextmanager
def instrumented(timings: Timings, prepared: engine.PreparedRun, milestones: dict[int, dict[str, Any]],
                 snapshots: Path) -> Iterator[None]:
    """The driver's parts timed into ``timings``, a copy of the run taken at each of ``milestones``
    (trials ended: its figures), and the stand-in given to the engine as its trainable."""
    def snapshot(at: int) -> None:
        copy = snapshots / f"at-{at}"
        copy.mkdir(parents=True)
        for name in (RUN_FILE, JOURNAL_FILE):  # the journal is whole: only this thread appends to it
            shutil.copy(prepared.run_dir / name, copy / name)
        write_table(prepared.table.frame(), copy / RESULTS_STEM)
        milestones[at].update(journal_mb=(prepared.run_dir / JOURNAL_FILE).stat().st_size / 1e6,
                              load=os.getloadavg()[0], snapshot=copy)

    def ending(hook: Callable) -> Callable:
        def wrapper(iteration: int, trials: list, trial, **info) -> None:
            hook(iteration, trials, trial, **info)
            timings.trial_ended(trials)
            if timings.ended in milestones:
                snapshot(timings.ended)
                print(f"   {timings.ended} trials ended", file=sys.stderr, flush=True)
        return wrapper

    def timed_callback(*args, **kwargs):
        callback = original_callback(*args, **kwargs)
        callback.on_trial_start = timings.timed("results callback", callback.on_trial_start)  # Ray calls it by name
        for hook in ("on_trial_complete", "on_trial_error"):
            setattr(callback, hook, ending(timings.timed("results callback", getattr(callback, hook))))
        return callback

    original_callback = engine.results_callback
    with timed_parts(timings, prepared.study.sampler), patched(engine, "search_trial", stand_in_trial), \
            patched(engine, "results_callback", timed_callback):
        yield


@contextlib.contextmanager
def timed_parts(timings: Timings, sampler: optuna.samplers.BaseSampler) -> Iterator[None]:
    """The searcher's suggest and tell (with ``sampler``'s share of each), MO-ASHA's decisions, the
    table's files and the journal's appends, timed into ``timings``."""
    backend = optuna.storages.journal.JournalFileBackend
    with contextlib.ExitStack() as stack:
        for target, name, replacement in (
                (StudySearcher, "suggest", timings.with_sampler_share("suggest", StudySearcher.suggest)),
                (StudySearcher, "on_trial_complete",
                 timings.with_sampler_share("tell", StudySearcher.on_trial_complete)),
                (MOASHA, "on_trial_result", timings.timed("MO-ASHA", MOASHA.on_trial_result)),
                (ResultsTable, "write", timings.timed("table files", ResultsTable.write)),
                (backend, "append_logs", timings.timed("journal append", backend.append_logs))):
            stack.enter_context(patched(target, name, replacement))
        for method in ("infer_relative_search_space", "sample_relative", "sample_independent", "before_trial",
                       "after_trial"):
            stack.enter_context(patched(sampler, method, timings.sampler_method(getattr(sampler, method))))
        yield


def run(args: argparse.Namespace, tmp: Path) -> tuple[dict[int, dict[str, Any]], Timings, float, float]:
    """One search until ``args.at``'s largest number of trials ended; the figures at each, the
    timings, and the search's wall and driver CPU seconds."""
    space = load_space(SPACE)
    milestones = {int(at): {} for at in args.at.split(",")}
    # trials beyond the last milestone keep its window in the steady state, not in the run's last trials draining
    searched = max(milestones) + args.cpus - len(space.paper_configs)
    settings = RunSettings(str(space.path), "fashion-mnist", "smoke", {"epochs": EPOCHS}, space.objectives,
                           args.sampler, "moasha", searched, 0, "seed-paper", 0.1)
    run_dir = tmp / "run"
    prepared = engine.prepare_run(run_dir, space, settings,
                                  Resources(cpus_per_trial=1, max_concurrent=args.max_concurrent), quiet=True)
    run_fields = {k: v for k, v in TrialConfig.for_run(prepared.settings, space.defaults, 0).to_dict().items()
                  if k not in space.defaults}
    prepared.context = StandInContext(run_dir, settings.objectives, tuple(prepared.scheduler.rungs), args.sleep,
                                      run_fields)
    prepared.quiet = False  # the progress lines are computed as in a run, and thrown away
    timings = Timings()
    with instrumented(timings, prepared, milestones, tmp / "snapshots"), open(os.devnull, "w") as devnull, \
            contextlib.redirect_stdout(devnull):
        started, cpu = time.perf_counter(), time.process_time()
        engine.search(prepared)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.confirm(prepared)
    for at, figures in milestones.items():
        if "snapshot" not in figures:
            continue
        started = time.perf_counter()
        write_report(figures["snapshot"], figures["snapshot"] / "report.html")
        wall_ms, cpu_ms, running = timings.per_trial(at)
        figures.update(report_s=time.perf_counter() - started, wall_ms=wall_ms, driver_cpu_ms=cpu_ms, running=running,
                       **{key: timings.per_call(name, at) for key, name in PARTS.items()},
                       append_ms=timings.per_call("journal append", at, wall=True),
                       appends=timings.calls_per_trial("journal append", at))
    return milestones, timings, wall, cpu


def searcher_alone(sampler_name: str, milestones: list[int], tmp: Path) -> tuple[dict[int, dict[str, float]], float]:
    """The StudySearcher without Ray or trials, on a study in a journal: each trial suggested, then
    told complete with its synthetic objectives (in a run MO-ASHA has most told pruned: this is the
    sampler's heavier case); the figures at each of ``milestones`` trials told, and the CPU seconds
    of all the suggestions and tells."""
    space, run_dir = load_space(SPACE), tmp / f"searcher-{sampler_name}"
    settings = settings_for_run(run_dir, RunSettings(
        str(space.path), "fashion-mnist", "smoke", {"epochs": EPOCHS}, space.objectives, sampler_name, "none",
        max(milestones) - len(space.paper_configs), 0, "seed-paper", 0.1))
    study = start_run(run_dir, settings, make_sampler(sampler_name, settings.seed))
    enqueue_origins(study, space)
    searcher = StudySearcher(study, space, settings.objectives, settings.trials, settings.seed, [], lambda *_: None)
    timings, figures = Timings(), {}
    with timed_parts(timings, study.sampler):
        for number in range(max(milestones)):
            assignment = searcher.suggest(str(number))[ASSIGNMENT]
            values = synthetic_objectives(assignment.configuration, assignment.trial_id)
            searcher.on_trial_complete(str(number), {Column.STATUS: TrialStatus.COMPLETED,
                                                     **{o: float(values[o]) for o in settings.objectives}})
            timings.ended += 1
            if timings.ended in milestones:
                figures[timings.ended] = {"journal_mb": (run_dir / JOURNAL_FILE).stat().st_size / 1e6}
    for at, row in figures.items():
        row.update(suggest_ms=timings.per_call("suggest", at), sampler_ms=timings.per_call("suggest: sampler", at),
                   tell_ms=timings.per_call("tell", at), append_ms=timings.per_call("journal append", at, wall=True),
                   appends=timings.calls_per_trial("journal append", at))
    return figures, timings.total_cpu("suggest") + timings.total_cpu("tell")


def print_searcher_alone(args: argparse.Namespace) -> None:
    milestones = [int(at) for at in args.at.split(",")]
    print(f"the searcher alone ({SPACE}, 14 papers first, every trial told complete), "
          f"load average {os.getloadavg()[0]:.1f}; optuna {optuna.__version__}")
    print("\n| sampler | trials | suggest ms | sampler ms | tell ms | appends/trial | append ms (wall) | journal MB |")
    print("|---|---|---|---|---|---|---|---|")
    totals = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sampler.split(","):
            figures, totals[name] = searcher_alone(name, milestones, Path(tmp))
            for at, row in figures.items():
                print(f"| {name} | {at} | {row['suggest_ms']:.1f} | {row['sampler_ms']:.1f} | {row['tell_ms']:.1f} | "
                      f"{row['appends']:.0f} | {row['append_ms']:.1f} | {row['journal_mb']:.2f} |", flush=True)
    print(f"\nCPU seconds of all suggestions and tells of {max(milestones)} trials: "
          + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in totals.items())
          + f"; load average {os.getloadavg()[0]:.1f} after")


PARTS = {"suggest_ms": "suggest", "sampler_ms": "suggest: sampler", "tell_ms": "tell", "moasha_ms": "MO-ASHA",
         "callback_ms": "results callback", "table_ms": "table files"}
COLUMNS = (("trials", "trials", "d"), ("wall_ms", "wall ms/trial", ".0f"), ("running", "trials at once", ".0f"),
           ("driver_cpu_ms", "driver CPU ms/trial", ".0f"), ("suggest_ms", "suggest ms", ".1f"),
           ("sampler_ms", "sampler ms", ".1f"), ("tell_ms", "tell ms", ".1f"), ("moasha_ms", "MO-ASHA ms", ".1f"),
           ("callback_ms", "callback ms", ".1f"), ("table_ms", "table files ms", ".0f"),
           ("appends", "appends/trial", ".0f"), ("append_ms", "append ms (wall)", ".1f"), ("journal_mb", "journal MB", ".2f"),
           ("report_s", "report s", ".1f"), ("load", "load", ".1f"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", default="100,500,1000,2000", help="trials ended at which to measure (the run ends "
                                                                  "at the largest)")
    parser.add_argument("--cpus", type=int, default=16, help="CPUs Ray declares (one per trial)")
    parser.add_argument("--sleep", type=float, default=20.0, help="seconds of a trial that reaches the last epoch")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--max-concurrent", type=int, default=0, help="ppsearch run's --max-concurrent (0: none)")
    parser.add_argument("--searcher-alone", action="store_true",
                        help="only the searcher, without Ray, for each of --sampler's comma-separated samplers")
    args = parser.parse_args()
    if args.searcher_alone:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        print_searcher_alone(args)
        return
    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    load = os.getloadavg()[0]
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"{SPACE} on Fashion-MNIST (14 papers first), sampler {args.sampler}, MO-ASHA at epochs 1, 3, 9 of "
          f"{EPOCHS}; stand-in trials of {args.sleep:g} s at most, {args.cpus} CPUs declared, one per trial; "
          f"{os.cpu_count()} real CPUs, load average {load:.1f} before; optuna {optuna.__version__}, "
          f"ray {ray.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        milestones, timings, wall, driver_cpu = run(args, Path(tmp))
    ray.shutdown()
    print(f"search: {timings.ended} trials in {wall:.0f} s")
    print("\n| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for at, figures in milestones.items():
        if "snapshot" in figures:
            print("| " + " | ".join(format({"trials": at, **figures}[key], spec) for key, _, spec in COLUMNS) + " |")
    parts = {name: timings.total_cpu(name) for name in ("suggest", "suggest: sampler", "tell", "tell: sampler",
                                                        "MO-ASHA", "results callback", "table files")}
    print(f"\nthe driver's CPU over the run: {driver_cpu:.0f} s, of which (sampler inside suggest and tell, "
          f"table files inside the callback):")
    for name, seconds in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"   {name:18s} {seconds:8.1f} s  {100 * seconds / driver_cpu:5.1f}%")
    top = max(("suggest", "tell", "MO-ASHA", "results callback"), key=parts.get)
    sampler = f"; the sampler's share {parts[top + ': sampler']:.0f} s" if f"{top}: sampler" in parts else ""
    print(f"first bottleneck: {top} ({parts[top]:.0f} s of the driver's {driver_cpu:.0f} s of CPU{sampler})")


if __name__ == "__main__":
    main()
