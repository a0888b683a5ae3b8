"""MLflow tracking (``--mlflow URI``): every trial of a run is an MLflow run in an experiment named
after the run directory, brought up to date from the trial's folder.

A trial's MLflow run is opened when it starts (its configuration and budget as params; its trial
id, origin, protocol and status as tags; a confirmation seed nested under its configuration's run),
gets its rung values as they are reported, and its record when it ends: every number of the record
as a metric (validation and test values, per corruption and perturbation, costs), the status, the
training loss of each epoch (from its checkpoint), its model file when asked for. A search trial's
test values, measured after the search, are added when they land in its record.

The run directory stays the source of truth: an MLflow run is found again by its trial id tag and
given only what it lacks, so a continued run (or --mlflow added to a run that has records) tracks
each trial once. The trials know nothing of MLflow: the search engine and ``train_seeds`` call the
:class:`Tracker`. MLflow is an optional dependency (``ppsearch[mlflow]``), imported only here and
only when tracking is asked for.
"""
from __future__ import annotations

import dataclasses
import http.client
import importlib.util
import numbers
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import UserError
from .rundir import CHECKPOINT_DIR, MODEL_FILE, Column, TrialStatus, read_record
from .training.trainer import saved_history
from .training.trial import TrialConfig

TAG_PREFIX = "ppsearch."  # ppsearch's tags on an MLflow run: ppsearch.<column>
# a trial's tags beside its trial id (what finds its run again) and its status (which follows the trial)
TAGGED = (Column.ORIGIN, Column.PROTOCOL)
PARAMS = tuple(c for c in TrialConfig.columns() if c not in TAGGED)  # a trial's configuration and budget
TRAIN_LOSS = "train_loss"  # the metric of each epoch's training loss, at step = the epoch
SERVER_SCHEMES = ("http", "https")  # a tracking server; the other URIs MLflow takes are its database stores
INSTALL = "pip install 'ppsearch[mlflow]'"
ANSWER_TIMEOUT_S = 5  # for the tracking server to answer the check; MLflow's own client would retry for minutes
BATCH_LIMIT = 1000  # what one MLflow log_batch request may hold (metrics, params and tags together)
# the characters MLflow allows in a metric or param name (colons only off Windows: left out); a
# constraint's column (constraint/latency_ms<=4) has others
_UNSAFE_IN_NAMES = re.compile(r"[^/\w.\- ]+")


def tag(column: str) -> str:
    """The MLflow tag holding a trial's ``column``."""
    return TAG_PREFIX + column


def metric_name(column: str) -> str:
    """The MLflow metric of a record's ``column``: its name, with each run of what MLflow refuses made one ``_``."""
    return _UNSAFE_IN_NAMES.sub("_", column)


@dataclasses.dataclass(frozen=True)
class Tracking:
    """Where a command tracks its trials (--mlflow URI) and whether their model files go with them
    (--mlflow-artifacts)."""

    uri: str
    artifacts: bool = False

    def check(self) -> None:
        """Refuse in one line what cannot be tracked to: MLflow not installed, a URI that is no
        tracking server's (http, https) or MLflow database's, a server that does not answer or a
        store MLflow cannot open. Writes nothing of the run (MLflow creates a database it is given
        that does not exist yet)."""
        if importlib.util.find_spec("mlflow") is None:
            raise UserError(f"--mlflow: MLflow is not installed; {INSTALL}")
        import mlflow
        from mlflow.store.db.db_types import DATABASE_ENGINES

        try:  # reading the port refuses one that is no number or out of range
            parts = urlsplit(self.uri)
            server = parts.scheme in SERVER_SCHEMES and bool(parts.hostname) and parts.port != 0
        except ValueError:
            parts, server = None, False
        if not server and (parts is None or parts.scheme.partition("+")[0] not in DATABASE_ENGINES):
            raise UserError(f"--mlflow {self.uri!r}: not a tracking URI; give the address of an MLflow tracking "
                            f"server (http://HOST:PORT) or an MLflow database ({', '.join(DATABASE_ENGINES)}: "
                            f"sqlite:///PATH ...)")
        if server:
            self._check_answers()
        try:
            mlflow.MlflowClient(self.uri).search_experiments(max_results=1)
        except Exception as error:  # noqa: BLE001 - whatever MLflow or its database driver raises: not trackable
            raise UserError(f"--mlflow {self.uri}: MLflow cannot track there: {_first_line(error)}") from None

    def _check_answers(self) -> None:
        try:
            urllib.request.urlopen(f"{self.uri.rstrip('/')}/health", timeout=ANSWER_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            return  # it answered; MLflow's client then says whether it is a tracking server
        except (OSError, http.client.HTTPException) as error:  # refused, no such host, no answer in time, not HTTP
            reason = getattr(error, "reason", error)
            raise UserError(f"--mlflow {self.uri}: no tracking server answers there ({reason}); start one "
                            f"(mlflow server --host HOST --port PORT) or correct the URI") from None

    def open(self, run_dir: str | Path) -> Tracker:
        """The tracker of ``run_dir``'s experiment (created with its first MLflow run)."""
        import mlflow
        from mlflow.environment_variables import MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT

        # MLflow prints each ended run's address on stdout: amid ppsearch's own lines, and despite --quiet
        os.environ.setdefault(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name, "true")
        return Tracker(mlflow.MlflowClient(self.uri), str(Path(run_dir).resolve()), self.artifacts)


@dataclasses.dataclass
class _TrackedRun:
    """A trial's MLflow run, as far as this tracker has seen or logged it."""

    run_id: str
    params: set[str]
    metrics: set[str]
    ended: bool


class Tracker:
    """The MLflow runs of one run directory's trials, in the experiment named ``experiment``: one
    per trial folder, found by its trial id tag (the folder's name)."""

    def __init__(self, client: Any, experiment: str, artifacts: bool) -> None:
        self._client, self._experiment, self._artifacts = client, experiment, artifacts
        found = client.get_experiment_by_name(experiment)
        self._experiment_id: str | None = found.experiment_id if found else None
        self._runs = self._tracked_runs()

    def _tracked_runs(self) -> dict[str, _TrackedRun]:
        """The experiment's runs (one driver at a time writes to them: this one), by trial id."""
        from mlflow.entities import RunStatus

        runs: dict[str, _TrackedRun] = {}
        page_token = None
        while self._experiment_id is not None:
            page = self._client.search_runs([self._experiment_id], max_results=BATCH_LIMIT, page_token=page_token)
            for run in page:
                trial_id = run.data.tags.get(tag(Column.TRIAL_ID))
                if trial_id is not None and trial_id not in runs:
                    runs[trial_id] = _TrackedRun(run.info.run_id, set(run.data.params), set(run.data.metrics),
                                                 RunStatus.is_terminated(RunStatus.from_string(run.info.status)))
            page_token = page.token
            if not page_token:
                break
        return runs

    def trial_started(self, trial_dir: Path, row: Mapping[str, Any]) -> None:
        """The trial in ``trial_dir`` starts training: its MLflow run is opened (again, for a trial
        that trains again) with what its record will begin with, ``row`` (its configuration, budget
        and identity). A trial that has a record is read back, not trained: nothing changes."""
        from mlflow.entities import RunStatus, RunTag

        if read_record(trial_dir) is not None:
            return
        run = self._run(trial_dir.name, row)
        self._log(run, tags=[RunTag(tag(Column.STATUS), str(TrialStatus.RUNNING))])
        if run.ended:
            self._client.update_run(run.run_id, RunStatus.to_string(RunStatus.RUNNING))
            run.ended = False

    def rung_reached(self, trial_dir: Path, epoch: int, values: Mapping[str, float]) -> None:
        """The trial in ``trial_dir`` reported ``values`` at the rung of ``epoch``."""
        run = self._runs[trial_dir.name]
        now = _now_ms()
        self._log(run, [_metric(metric_name(name), value, now, epoch) for name, value in values.items()])

    def trial_recorded(self, trial_dir: Path) -> None:
        """Bring the MLflow run of the trial in ``trial_dir`` up to its record (nothing while it has
        none): the params and metrics it lacks, at step = the epochs trained; and once the trial
        has ended, the training loss of each epoch, the status, the model file (with artifacts),
        and the run ended."""
        from mlflow.entities import RunStatus, RunTag

        record = read_record(trial_dir)
        if record is None:
            return
        run = self._run(trial_dir.name, record)
        step, now = int(record.get(Column.EPOCHS_COMPLETED) or 0), _now_ms()
        metrics = [_metric(metric_name(column), value, now, step) for column, value in record.items()
                   if _is_number(value) and column not in PARAMS and metric_name(column) not in run.metrics]
        if run.ended:
            self._log(run, metrics)
            return
        if TRAIN_LOSS not in run.metrics:
            metrics += [_metric(TRAIN_LOSS, r.train_loss, now, r.epoch) for r in saved_history(trial_dir / CHECKPOINT_DIR)]
        status = record[Column.STATUS]
        tags = [RunTag(tag(Column.STATUS), str(status))]
        if record.get(Column.FAILURE_REASON):
            tags.append(RunTag(tag(Column.FAILURE_REASON), record[Column.FAILURE_REASON]))
        self._log(run, metrics, _params(record, run), tags)
        model = trial_dir / MODEL_FILE
        if self._artifacts and model.is_file():
            self._client.log_artifact(run.run_id, str(model))
        self._client.set_terminated(run.run_id, RunStatus.to_string(
            RunStatus.FAILED if status == TrialStatus.FAILED else RunStatus.FINISHED))
        run.ended = True

    def _run(self, trial_id: str, row: Mapping[str, Any]) -> _TrackedRun:
        """The trial's MLflow run: the one this experiment holds, or a new one made from ``row``,
        nested under its configuration's run when the trial repeats another's configuration."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        if trial_id in self._runs:
            return self._runs[trial_id]
        if self._experiment_id is None:
            self._experiment_id = self._client.create_experiment(self._experiment)
        tags = {tag(Column.TRIAL_ID): trial_id, **{tag(c): str(row[c]) for c in TAGGED if c in row}}
        config_id = row.get(Column.CONFIG_ID, trial_id)
        parent = self._runs.get(config_id) if config_id != trial_id else None
        if parent is not None:
            tags[MLFLOW_PARENT_RUN_ID] = parent.run_id
        created = self._client.create_run(self._experiment_id, run_name=trial_id, tags=tags)
        run = self._runs[trial_id] = _TrackedRun(created.info.run_id, set(), set(), False)
        self._log(run, params=_params(row, run))
        return run

    def _log(self, run: _TrackedRun, metrics: Sequence[Any] = (), params: Sequence[Any] = (),
             tags: Sequence[Any] = ()) -> None:
        """One log_batch request (none for nothing), or several where the metrics exceed one's limit."""
        if not (metrics or params or tags):
            return
        first = BATCH_LIMIT - len(params) - len(tags)
        self._client.log_batch(run.run_id, metrics=metrics[:first], params=params, tags=tags)
        for start in range(first, len(metrics), BATCH_LIMIT):
            self._client.log_batch(run.run_id, metrics=metrics[start:start + BATCH_LIMIT])
        run.params.update(p.key for p in params)
        run.metrics.update(m.key for m in metrics)


def _params(row: Mapping[str, Any], run: _TrackedRun) -> list[Any]:
    """The params of ``row`` that ``run`` lacks (MLflow refuses to change one)."""
    from mlflow.entities import Param

    return [Param(column, str(row[column])) for column in PARAMS if column in row and column not in run.params]


def _metric(name: str, value: float, timestamp: int, step: int) -> Any:
    from mlflow.entities import Metric

    return Metric(name, float(value), timestamp, int(step))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
