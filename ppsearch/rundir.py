"""A run directory's contracts, declared once: trial status, origins, the results table's columns,
the files a run holds, and the one reader and writer of each.

A search run (``ppsearch run``) holds the files of :data:`RUN_LAYOUT`; a continued run reads them
back, so nothing else needs to survive an interruption.

A ``ppsearch train`` run holds ``seed-<n>/`` trial folders and ``records.parquet``. This module
imports neither torch nor the trainer: reports, the dashboard and ``pick`` read runs through it.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import enum
import json
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import __version__
from .config import PAPER_PREFIX
from .declared import field_problem
from .errors import UserError
from .files import atomic_path, read_json, write_json

if TYPE_CHECKING:
    import optuna

RUN_FILE = "run.json"
LOCK_FILE = "run.lock"
JOURNAL_FILE = "optuna.journal"
SETS_DIR = "sets"
TUNE_DIR = "tune"
MOASHA_FILE = "moasha.json"
LATENCY_DIR = "latency"  # one measured latency per configuration (models.latency.cached_latency)
TRIALS_DIR = "trials"
RECORD_FILE = "record.json"
MODEL_FILE = "model.safetensors"  # a trained model (and a checkpoint's), readable by `ppsearch eval`
CHECKPOINT_DIR = "checkpoint"  # a trial's latest epoch checkpoint (resumed from)
RESULTS_STEM = "results"  # a search's table
RECORDS_STEM = "records"  # a `ppsearch train` run's table
# what a search run directory holds: (path, what it is)
RUN_LAYOUT = (
    (RUN_FILE, "the run's settings (RunSettings), including the Optuna study's name"),
    (LOCK_FILE, "the driver running the run now (host, pid, start), locked while it lives: one driver at a time"),
    (JOURNAL_FILE, "the Optuna study (JournalStorage; optuna-dashboard opens it)"),
    (f"{SETS_DIR}/", "the -C/-P sets every trial is measured on, made once (test, and validation)"),
    (f"{TUNE_DIR}/", "Ray Tune's experiment state (not needed to continue a run)"),
    (MOASHA_FILE, "MO-ASHA's rung records, so that a continued run stops what an uninterrupted one would"),
    (f"{LATENCY_DIR}/", "each configuration's measured latency, reused by its seeds and by a continued run"),
    (f"{TRIALS_DIR}/<id>/", f"one trial: {CHECKPOINT_DIR}/, {MODEL_FILE}, sparsity.csv, then record.json (written "
                            f"last; a reported search trial's test values are added to it after the search)"),
    (f"{RESULTS_STEM}.parquet", f"the results table, one row per trial (and {RESULTS_STEM}.csv for people)"),
)


class LatencyBackend(enum.StrEnum):
    """What runs a latency's timed passes (``models.latency``)."""

    TORCH = "torch"  # eager torch, as ppsearch trains and evaluates
    ONNXRUNTIME = "onnxruntime"  # the model exported as `ppsearch export` writes it, run by ONNX Runtime: as served


LATENCY_DEVICES = ("cpu", "cuda")  # where a search's trials may time their latency (cuda: their GPU)


class TrialStatus(enum.StrEnum):
    COMPLETED = "completed"  # trained its whole budget and was measured
    PRUNED = "pruned"  # stopped early by the scheduler
    FAILED = "failed"  # an exception, a NaN loss, out of memory: the reason is recorded
    INFEASIBLE = "infeasible"  # its cost broke a constraint of the run (--constraint): measured, never trained
    RUNNING = "running"
    PENDING = "pending"


AUTO = "auto"  # --confirm-seeds auto: racing confirmation
# a trial's status once it ended
FINAL_STATUSES = (TrialStatus.COMPLETED, TrialStatus.PRUNED, TrialStatus.FAILED, TrialStatus.INFEASIBLE)
SEARCHED = "searched"  # the origin of a configuration the sampler chose


FRONT_PREFIX = "front:"  # the origin of a design carried from an earlier run's front (--seed-from)


def front_origin(run_name: str, trial_id: str) -> str:
    return f"{FRONT_PREFIX}{run_name}:{trial_id}"


def origin_kind(origin: Any) -> str:
    """How a configuration came into a run: ``paper``, ``earlier front`` (--seed-from) or ``searched``."""
    if is_paper(origin):
        return "paper"
    return "earlier front" if str(origin).startswith(FRONT_PREFIX) else "searched"


def paper_origin(name: str) -> str:
    return PAPER_PREFIX + name


def is_paper(origin: Any) -> bool:
    return str(origin).startswith(PAPER_PREFIX)


def paper_name(origin: str) -> str:
    return origin.removeprefix(PAPER_PREFIX)


class Column(enum.StrEnum):
    """The results table's columns besides the configuration keys (``config.CONFIG_KEYS``) and the
    per-corruption / per-perturbation columns named with the prefixes below."""

    TRIAL_ID = "trial_id"
    ORIGIN = "origin"
    STATUS = "status"
    FAILURE_REASON = "failure_reason"
    CONSTRAINT_VIOLATION = "constraint_violation"  # sum of the run's constraints' excesses (0: feasible; ppsearch.constraints)
    BUDGET_REACHED = "budget_reached"  # epochs trained (a pruned trial's rung)
    EPOCHS_COMPLETED = "epochs_completed"
    RUNG_CLEAN_ERROR = "rung_clean_error"  # validation clean error at the last MO-ASHA rung (a pruned trial's)
    RUNG_CORRUPTION_ERROR = "rung_corruption_error"  # the cheap corruption error measured at a rung
    RUNG_CORRUPTION_INCREASE = "rung_corruption_increase"  # that error less the rung's clean error (relative mCE's probe)
    RUNG_FLIP_RATE = "rung_flip_rate"  # the cheap mean flip rate of a few -P sequences measured at a rung
    CLEAN_ERROR = "clean_error"
    MCE = "mce"
    RELATIVE_MCE = "relative_mce"
    MFR = "mfr"
    MT5D = "mt5d"  # mean top-5 distance over the protocol's perturbations
    PROTOCOL = "protocol"  # the evaluation protocol every robustness number was measured under
    FROST = "frost"  # which frost the -C sets hold: the benchmark's textures or ppsearch's procedural one
    CORRUPTION_ERROR = "corruption_error"  # unnormalised mean error over corruptions and severities
    CE_NORMALISER = "ce_normaliser"
    FR_NORMALISER = "fr_normaliser"
    T5D_NORMALISER = "t5d_normaliser"  # what mT5D is divided by (nothing published: it says so)
    RCE_CLEAN_ERROR = "rce_clean_error"  # the clean error relative CE subtracts: on the -C images
    RCE_IMAGES = "rce_images"  # those images: the first N test images, the -C errors' own
    PARAMS = "params"
    FLOPS = "flops"  # per image, in eval mode
    LATENCY_MS = "latency_ms"  # median of timed forward passes (models.latency), in eval and inference mode
    LATENCY_SPREAD_MS = "latency_spread_ms"  # their interquartile range: how noisy the machine was
    LATENCY_DEVICE = "latency_device"  # "cpu" or the GPU's name
    LATENCY_THREADS = "latency_threads"
    LATENCY_BATCH = "latency_batch"  # images per timed pass
    LATENCY_BACKEND = "latency_backend"  # what ran the timed passes: eager torch or ONNX Runtime
    TRAIN_SECONDS = "train_seconds"
    EVAL_SECONDS = "eval_seconds"  # measuring the selection split (validation, in a search), sparsity, saving the model
    TEST_EVAL_SECONDS = "test_eval_seconds"  # measuring the test split (a search's: after it, reported trials only)
    IMAGES_PER_SECOND = "images_per_second"
    SKIPPED_IMAGES = "skipped_images"  # undecodable training files skipped (streamed data, --bad-images skip)
    FIRST_LAYER_WEIGHT_SPARSITY = "first_layer_weight_sparsity"
    FIRST_LAYER_RESPONSE_SPARSITY = "first_layer_response_sparsity"
    TRIAL_DIR = "trial_dir"
    SEED = "seed"  # the trial's training seed (TrialConfig.seed)
    CONFIG_ID = "config_id"  # the trial a confirmation seed repeats (its own id for a search trial)
    NODE = "node"  # the Ray node that ran the trial (a search)
    FINISHED_AT = "finished_at"  # UTC, ISO 8601


ERROR_PREFIX = "error/"  # error/<corruption>/<severity>
CE_PREFIX = "ce/"  # ce/<corruption>
FP_PREFIX = "fp/"  # fp/<perturbation>
T5D_PREFIX = "t5d/"  # t5d/<perturbation>
VALIDATION_PREFIX = "val_"  # val_<metric>: measured on the held-out validation split (what a search selects on)
PROCEDURAL_FROST = "procedural (ppsearch)"  # the frost column's value when the benchmark's textures were not used
CONSTRAINT_PREFIX = "constraint/"  # constraint/<constraint as written>: its excess (<= 0: met)
ERROR_OBJECTIVES = (Column.CLEAN_ERROR, Column.MCE, Column.MFR, Column.RELATIVE_MCE, Column.CORRUPTION_ERROR)
# what a design costs: known before it trains, the same on every split and every seed (latency is
# measured once per configuration), so selecting on it uses no images
COST_METRICS = (Column.PARAMS, Column.FLOPS, Column.LATENCY_MS)
OBJECTIVES = (*ERROR_OBJECTIVES, *COST_METRICS)
# the metrics measured on both splits: unprefixed on the test split (what is reported), with
# VALIDATION_PREFIX on the validation split (what a search selects on)
SUMMARY_METRICS = (*ERROR_OBJECTIVES, Column.MT5D)


def validation_column(metric: str) -> str:
    """The column of ``metric`` measured on the validation split (a cost's own column: a cost is
    measured on no split)."""
    return metric if metric in COST_METRICS else f"{VALIDATION_PREFIX}{metric}"


def completed(table: pd.DataFrame, measured: Sequence[str] = ()) -> pd.DataFrame:
    """The rows of trials that trained their whole budget and were measured, with every column of
    ``measured`` present (pruned and failed trials never enter a front or an estimate)."""
    return table[table[Column.STATUS] == TrialStatus.COMPLETED].dropna(subset=list(measured))


def has_test_values(table: pd.DataFrame) -> pd.Series:
    """Which rows hold test-split values: every trial measured in its own run (confirmation seeds,
    ``ppsearch train``), and a search trial once its configuration is reported (the search
    measures the validation split only)."""
    if Column.CLEAN_ERROR not in table:
        return pd.Series(False, index=table.index)
    return table[Column.CLEAN_ERROR].notna()


def feasible(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose design meets every constraint of the run (all of them in a run without)."""
    if Column.CONSTRAINT_VIOLATION not in table:
        return table
    return table[~(table[Column.CONSTRAINT_VIOLATION] > 0)]


def search_trials(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the search's own trials (one seed per configuration), without confirmations."""
    if Column.CONFIG_ID not in table:
        return table
    return table[table[Column.CONFIG_ID] == table[Column.TRIAL_ID]]


def check_objectives(objectives: Sequence[str], where: str) -> tuple[str, ...]:
    if not objectives:
        raise UserError(f"{where}: at least one objective is needed; allowed: {', '.join(OBJECTIVES)}")
    for objective in objectives:
        if objective not in OBJECTIVES:
            raise UserError(f"{where}: unknown objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    if len(set(objectives)) != len(objectives):
        raise UserError(f"{where}: objectives repeat: {', '.join(objectives)}")
    if not set(objectives) & set(ERROR_OBJECTIVES):
        raise UserError(f"{where}: {', '.join(objectives)} are all costs; a search needs an error objective beside "
                        f"them ({', '.join(ERROR_OBJECTIVES)}): the cheapest design is the plain model, known untrained")
    return tuple(objectives)


@dataclasses.dataclass(frozen=True)
class Assignment:
    """One trial of a run as a searcher hands it out (the study's trials and the confirmation
    seeds alike), and all a trial's record says about where it came from."""

    configuration: dict[str, Any]  # configuration keys (``config.KEYS``) -> values
    trial_id: str  # names the trial's folder
    origin: str  # SEARCHED, a paper (``paper:NAME``) or an earlier front (``front:RUN:TRIAL``)
    seed: int  # the training seed
    config_id: str  # the trial whose configuration this one trains: its own id, or the one a confirmation repeats
    study_trial: int | None = None  # its number in the Optuna study (None: a confirmation seed, not in the study)

    def identity(self) -> dict[str, Any]:
        """The record's columns that say which trial this is."""
        return {Column.TRIAL_ID: self.trial_id, Column.ORIGIN: self.origin, Column.SEED: self.seed,
                Column.CONFIG_ID: self.config_id}


def failed_record(assignment: Assignment, reason: str) -> dict[str, Any]:
    """The record of a trial that failed before it trained (an exception outside training)."""
    return ended_record(assignment, TrialStatus.FAILED, 0, reason, {})


def ended_record(assignment: Assignment, status: TrialStatus, epochs: int, reason: str,
                 rung_values: Mapping[str, float]) -> dict[str, Any]:
    """The record of a trial that ended without writing one: stopped early by the scheduler (after
    ``epochs``, with the values of the rung it reached), or lost to a Ray error."""
    return {**assignment.configuration, **assignment.identity(), Column.STATUS: status,
            Column.EPOCHS_COMPLETED: epochs, Column.FAILURE_REASON: reason, **rung_values}


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What defines a search run; stored in ``run.json`` and checked when a run directory is reused."""

    space: str
    dataset: str
    budget: str
    budget_overrides: dict[str, int | str | None]
    objectives: tuple[str, ...]
    sampler: str
    scheduler: str
    trials: int
    seed: int
    protocol: str  # the evaluation protocol of every trial (ppsearch.robustness.metrics.PROTOCOLS)
    validation_fraction: float  # of the training split, held out to select on (stratified, drawn from seed)
    study_name: str = ""
    seed_from: tuple[str, ...] = ()  # earlier runs whose front designs this run trains first (--seed-from)
    image_size: int | None = None  # imagenet's image size (--image-size); None: the dataset's own
    confirm_seeds: str = "1"  # seeds per front and paper configuration ("1": none), or AUTO (racing)
    max_seeds: int = 10  # AUTO: the most seeds a configuration gets
    verdict_alpha: float = 0.05  # the level of the verdicts (and of racing's decisions)
    constraints: tuple[str, ...] = ()  # bounds on cost (--constraint; ppsearch.constraints), as parsed and rewritten
    latency_batch: int = 1  # images per timed pass of a trial's latency
    latency_device: str = ""  # where a trial's latency is timed ("": the trial's own device)
    latency_backend: str = LatencyBackend.TORCH.value  # what runs the timed passes

    def differences(self, other: RunSettings) -> list[str]:
        """Settings that differ from ``other``'s, apart from the study name, the trial count and a
        fixed number of confirmation seeds (a continued run may ask for more trials or seeds;
        racing's decisions depend on its settings, which therefore stay)."""
        mine, theirs = (json.loads(json.dumps(dataclasses.asdict(x))) for x in (self, other))
        fixed_counts = mine["confirm_seeds"] != AUTO and theirs["confirm_seeds"] != AUTO
        free = {"study_name", "trials"} | ({"confirm_seeds", "max_seeds"} if fixed_counts else set())
        return [k for k in mine if k not in free and mine[k] != theirs[k]]


MIN_RACING_SEEDS = 3  # racing needs two unbiased seeds beside the selected one


def check_settings(settings: RunSettings) -> None:
    """Refuse settings that cannot work (objectives, confirmation, verdict level), before anything
    is written; the names of samplers, schedulers and protocols are checked where they live."""
    check_objectives(settings.objectives, "--objectives")
    count = settings.confirm_seeds
    if count != AUTO and not (count.isdigit() and int(count) >= 1):
        raise UserError(f"--confirm-seeds: must be an integer >= 1 (1: no confirmation) or {AUTO}, got {count!r}")
    if count == AUTO and (isinstance(settings.max_seeds, bool) or not isinstance(settings.max_seeds, int)
                          or settings.max_seeds < MIN_RACING_SEEDS):
        raise UserError(f"--max-seeds: --confirm-seeds {AUTO} needs room for at least {MIN_RACING_SEEDS} seeds per "
                        f"configuration (two unbiased ones beside the selected seed), got {settings.max_seeds!r}")
    if not 0 < settings.verdict_alpha < 0.5:
        raise UserError(f"--verdict-alpha: must be in (0, 0.5), got {settings.verdict_alpha!r}")
    if isinstance(settings.latency_batch, bool) or not isinstance(settings.latency_batch, int) \
            or settings.latency_batch < 1:
        raise UserError(f"--latency-batch: must be an integer >= 1, got {settings.latency_batch!r}")


def settings_for_run(run_dir: str | Path, settings: RunSettings) -> RunSettings:
    """``settings`` checked, as the run in ``run_dir`` has them: an existing run's (it must be this
    run), or new ones with a fresh study name. Nothing is written."""
    check_settings(settings)
    if (Path(run_dir) / RUN_FILE).is_file():
        saved = read_settings(run_dir)
        differing = saved.differences(settings)
        if differing:
            key = differing[0]
            raise UserError(f"run directory {run_dir} holds a run with {key}={getattr(saved, key)!r}, not "
                            f"{getattr(settings, key)!r}; choose another --out or repeat the original command")
        return dataclasses.replace(settings, study_name=saved.study_name)
    return dataclasses.replace(settings, study_name=f"ppsearch-{Path(settings.space).stem}-{uuid.uuid4().hex[:8]}")


def start_run(run_dir: str | Path, settings: RunSettings, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """The first writes of a run, once everything is checked: a new run's settings, the repair of
    a torn journal (said on stderr), and its study, opened (created the first time)."""
    if not (Path(run_dir) / RUN_FILE).is_file():
        write_settings(run_dir, settings)
    repaired = repair_journal(Path(run_dir) / JOURNAL_FILE)
    if repaired:
        print(f"ppsearch: {repaired}", file=sys.stderr, flush=True)
    return open_study(run_dir, sampler)


def read_settings(run_dir: str | Path) -> RunSettings:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} is not a `ppsearch run` directory (no {RUN_FILE})")
    raw = read_json(path)
    if isinstance(raw, dict) and "study_name" in raw and "protocol" not in raw:
        raise UserError(f"{path} was written before evaluation protocols existed: its flip rates mix two frame "
                        f"rules, so it cannot be continued or compared; start a new run (another --out)")
    if isinstance(raw, dict) and "study_name" in raw and "validation_fraction" not in raw:
        raise UserError(f"{path} was written before validation splits existed: its search selected on test images, "
                        f"so its fronts cannot be reported as held-out results; start a new run (another --out)")
    fields = {f.name for f in dataclasses.fields(RunSettings)}
    required = {f.name for f in dataclasses.fields(RunSettings) if f.default is dataclasses.MISSING}
    if not isinstance(raw, dict) or not required <= set(raw):
        raise UserError(f"{path} is not a ppsearch run file (it lacks the run's settings)")
    # a setting this version does not know changes what the run means: reading past it would misreport
    # the run, and continuing it would run another search
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise UserError(f"{run_dir} holds a run of a newer format: its settings {', '.join(unknown)} are unknown to "
                        f"ppsearch {__version__}; upgrade ppsearch to read it")
    problem = field_problem(raw, RunSettings)
    if problem:
        raise UserError(f"{path}: {problem}: the file was edited or damaged; restore it, or start a new run "
                        f"(another --out)")
    return RunSettings(**{**{k: v for k, v in raw.items() if k in fields}, "objectives": tuple(raw["objectives"]),
                          "seed_from": tuple(raw.get("seed_from", ())), "constraints": tuple(raw.get("constraints", ()))})


def write_settings(run_dir: str | Path, settings: RunSettings) -> None:
    write_json(Path(run_dir) / RUN_FILE, dataclasses.asdict(settings))


def torn_journal_tail(path: Path) -> int:
    """How many bytes at the end of the Optuna journal ``path`` are a record that was cut off (a
    driver killed while writing it); 0 when it ends with a whole line or does not exist."""
    data = path.read_bytes() if path.is_file() else b""
    if not data or data.endswith(b"\n"):
        return 0
    return len(data) - (data.rfind(b"\n") + 1)


def repair_journal(path: Path) -> str | None:
    """Drop a torn last record from the Optuna journal ``path`` (so nothing is ever written after
    it), keeping a copy of the damaged file; returns what was done, or None when nothing was needed.
    A record damaged before the last cannot be dropped (the records after it build on it): that is
    a UserError naming its line."""
    torn = torn_journal_tail(path)
    _check_journal_records(path, torn)
    if not torn:
        return None
    copy = path.with_name(f"{path.name}.damaged-{int(path.stat().st_mtime)}")
    shutil.copy2(path, copy)
    with open(path, "r+b") as journal:
        journal.truncate(path.stat().st_size - torn)
    return f"repaired {path}: dropped a partial last record of {torn} bytes (the damaged file is kept as {copy.name})"


def _check_journal_records(path: Path, torn: int) -> None:
    if not path.is_file():
        return
    with open(path, "rb") as journal:
        whole = journal.read(path.stat().st_size - torn)
    for number, line in enumerate(whole.splitlines(), start=1):
        try:
            json.loads(line)
        except ValueError:
            raise UserError(f"{path}: record {number} is damaged (not JSON), so the study cannot be read past it; "
                            f"restore the file from a backup, or start a new run (another --out)") from None


def read_record(trial_dir: str | Path) -> dict[str, Any] | None:
    """A trial's record, or None while it has none (a trial with a record is done)."""
    path = Path(trial_dir) / RECORD_FILE
    return read_json(path) if path.is_file() else None


def write_record(trial_dir: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write a trial's record (atomically: it is the mark of a finished trial); the one writer."""
    write_json(Path(trial_dir) / RECORD_FILE, record)
    return record


def write_record_once(trial_dir: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` unless the trial wrote its own (which is kept)."""
    if read_record(trial_dir) is None:
        write_record(trial_dir, record)


class ResultsTable:
    """A search's results table, one row per trial: read from the trial folders once, then kept up
    to date a trial at a time (its record when it ends; Ray's state for trials without one), and
    written to ``results.parquet``/``.csv``. A confirmation's row names the trial it repeats as its
    configuration id; a search trial's configuration id is its own id.

    The files take time in proportion to the rows (a quarter of a second for 2,000 trials on a
    2-core machine, most of it the CSV), so writing them at every trial end costs a run
    O(trials^2): as trials end they are written by :meth:`write_due`, which keeps their writing
    under :attr:`WRITE_SHARE` of the time (2,000 trials: every two minutes) and leaves the rest to
    the next :meth:`write` (every Tune session ends with one) or, when the driver stops first, to
    its exit. The trial records stay the source of truth."""

    # of the driver's time, at most, spent writing the files as trials end: the whole driver of a
    # 2,000-trial, 200-GPU search has 1% to spend (benchmarks/RESULTS.md, issue 26)
    WRITE_SHARE = 0.002

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.rows: dict[str, dict[str, Any]] = {}
        self.recorded: set[str] = set()  # trials whose row is their record
        self.waiting: set[str] = set()  # trials that ended before their record was on disk
        self.written_at: float | None = None  # time.monotonic() when the files were last written
        self.write_seconds = 0.0  # what that write took
        self.unwritten = False  # trials ended since then
        self.exit_write = False  # whether the driver's exit writes what is unwritten
        for trial_dir in sorted(p for p in (self.run_dir / TRIALS_DIR).glob("*") if p.is_dir()):
            self.read(trial_dir.name)

    def read(self, trial_id: str) -> bool:
        """Take ``trial_id``'s record into the table; False while it has none."""
        record = read_record(self.run_dir / TRIALS_DIR / trial_id)
        if record is None:
            return False
        self.rows[trial_id] = {Column.TRIAL_ID: trial_id, Column.ORIGIN: record.get(Column.ORIGIN, SEARCHED),
                               Column.CONFIG_ID: trial_id,
                               Column.BUDGET_REACHED: record.get(Column.EPOCHS_COMPLETED, 0), **record}
        self.recorded.add(trial_id)
        self.waiting.discard(trial_id)
        return True

    def live(self, assignment: Assignment, status: TrialStatus) -> None:
        """A trial without a record yet, in Ray's state ``status``."""
        if assignment.trial_id not in self.recorded:
            self.rows[assignment.trial_id] = {**assignment.configuration, **assignment.identity(),
                                              Column.STATUS: status}

    def ended(self, assignment: Assignment, status: TrialStatus) -> None:
        """``assignment``'s trial ended: its record, or ``status`` until the record is written."""
        if not self.read(assignment.trial_id):
            self.live(assignment, status)
            self.waiting.add(assignment.trial_id)

    def settle(self) -> None:
        """Read the records of trials that ended before they were written."""
        for trial_id in sorted(self.waiting):
            self.read(trial_id)

    def frame(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The table; with ``columns``, only those of them (a look at a few columns costs a fraction
        of the whole, which has a column per corruption and perturbation)."""
        if columns is None:
            return pd.DataFrame(list(self.rows.values()))
        return pd.DataFrame([{c: row[c] for c in columns if c in row} for row in self.rows.values()])

    def write(self) -> pd.DataFrame:
        """Write the files now; returns the table."""
        started = time.monotonic()
        table = self.frame()
        write_table(table, self.run_dir / RESULTS_STEM)
        self.written_at = time.monotonic()
        self.write_seconds = self.written_at - started
        self.unwritten = False
        return table

    def write_due(self) -> None:
        """A trial ended: write the files if the time since their last write is long enough for
        this one to take at most :attr:`WRITE_SHARE` of it; otherwise a later write does."""
        if self.written_at is None or time.monotonic() - self.written_at >= self.write_seconds / self.WRITE_SHARE:
            self.write()
            return
        self.unwritten = True
        if not self.exit_write:  # a driver stopped (Ctrl-C, a fault) before its next write
            atexit.register(self._write_at_exit)
            self.exit_write = True

    def _write_at_exit(self) -> None:
        if self.unwritten and self.run_dir.is_dir():
            with contextlib.suppress(OSError):  # the records hold it: the run's next driver writes the files
                self.write()


def open_study(run_dir: str | Path, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """A search run's Optuna study, in its journal; the one way to open it. With a ``sampler`` (the
    search), the study is created the first time, with the objectives' names; without one (reading
    a run), it must exist."""
    import optuna

    settings = read_settings(run_dir)
    journal = Path(run_dir) / JOURNAL_FILE
    if sampler is None and not journal.is_file():
        raise UserError(f"{run_dir} has no Optuna study ({JOURNAL_FILE}); is it a `ppsearch run` directory?")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    if sampler is None:
        return optuna.load_study(study_name=settings.study_name, storage=storage)
    study = optuna.create_study(storage=storage, study_name=settings.study_name, sampler=sampler,
                                directions=["minimize"] * len(settings.objectives), load_if_exists=True)
    if study.metric_names is None:
        with warnings.catch_warnings():  # flagged experimental; it is what optuna-dashboard shows
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(settings.objectives))
    return study


def write_table(records: pd.DataFrame, path_stem: str | Path) -> tuple[Path, Path]:
    """``<stem>.parquet`` (typed, for analysis) and ``<stem>.csv`` (for people), each atomically."""
    stem = Path(path_stem)
    paths = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    for path, write in zip(paths, (records.to_parquet, records.to_csv)):
        with atomic_path(path) as tmp:
            write(tmp, index=False)
    return paths


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, RunSettings]:
    """A search run's results table, with a completed trial, and settings (one-line errors for what
    is missing)."""
    table, settings = read_run(run_dir)
    check_completed(table, run_dir)
    return table, settings


def check_completed(table: pd.DataFrame, run_dir: str | Path) -> None:
    """Refuse the results table of the run in ``run_dir`` while no trial of it has completed."""
    if completed(table).empty:
        raise UserError(f"{Path(run_dir) / RESULTS_STEM}.parquet has no completed trial yet: nothing to report")


def read_run(run_dir: str | Path) -> tuple[pd.DataFrame, RunSettings]:
    """A search run's results table, as far as the run has come, and settings (one-line errors for
    what is missing)."""
    run_dir = Path(run_dir)
    path = run_dir / f"{RESULTS_STEM}.parquet"
    if not path.is_file() or not (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir} has no results table ({path.name} and {RUN_FILE}); "
                        f"is it a `ppsearch run` directory?")
    table = read_table(run_dir)
    missing = [c for c in (Column.TRIAL_ID, Column.ORIGIN, Column.STATUS) if c not in table]
    if missing:
        raise UserError(f"{path} lacks column {str(missing[0])!r}: it was written by an older ppsearch; "
                        f"rerun the search command on the directory to rebuild it")
    return table, read_settings(run_dir)


def read_table(run_dir: str | Path, stem: str = RESULTS_STEM) -> pd.DataFrame:
    """A run's table; one that cannot be read (damaged, truncated) is rebuilt from the trial records
    (the source of truth), said on stderr, or named when the run has no records to rebuild it from."""
    import pyarrow

    path = Path(run_dir) / f"{stem}.parquet"
    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowException, OSError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
    if stem != RESULTS_STEM or not any((Path(run_dir) / TRIALS_DIR).glob(f"*/{RECORD_FILE}")):
        raise UserError(f"{path} cannot be read ({problem}) and there are no trial records to rebuild it from; "
                        f"rerun the command that wrote it")
    table = ResultsTable(run_dir).write()
    print(f"ppsearch: rebuilt {path} from the trial records: it could not be read ({problem})", file=sys.stderr)
    return table


def completed_trials(run_dir: str | Path) -> pd.DataFrame:
    """The completed trials of a search run (``results``) or a ``ppsearch train`` run (``records``),
    with an ``origin`` column either way (a train run's is its folder name)."""
    run_dir = Path(run_dir)
    for stem in (RESULTS_STEM, RECORDS_STEM):
        if (run_dir / f"{stem}.parquet").is_file():
            table = read_table(run_dir, stem)
            break
    else:
        raise UserError(f"{run_dir} holds neither {RESULTS_STEM}.parquet (ppsearch run) nor "
                        f"{RECORDS_STEM}.parquet (ppsearch train)")
    if Column.ORIGIN not in table:
        table[Column.ORIGIN] = run_dir.name
    return completed(table)


def status_counts(table: pd.DataFrame, statuses: Sequence[TrialStatus] = tuple(TrialStatus)) -> str:
    """``3 completed, 1 pruned, ...``: how many trials of ``table`` have each status (infeasible
    only where there are some: a run without constraints has none)."""
    counts: Mapping[str, int] = table[Column.STATUS].value_counts() if len(table) else {}
    return ", ".join(f"{counts.get(status, 0)} {status}" for status in statuses
                     if status != TrialStatus.INFEASIBLE or counts.get(status, 0))
