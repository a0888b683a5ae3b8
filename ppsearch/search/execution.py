"""A search trial on a Ray worker: the assignment a searcher handed out, trained and measured into
``trials/<trial id>``, its epochs reported at MO-ASHA's rungs and its objectives at the end."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..constraints import Constraint
from ..data.streaming import DataAccess
from ..files import storage_fault
from ..models.latency import LatencySetup
from ..rundir import (
    LATENCY_DIR,
    TRIALS_DIR,
    Assignment,
    Column,
    LatencyBackend,
    RunSettings,
    TrialStatus,
    failed_record,
    is_paper,
    validation_column,
    write_record,
)
from ..training.trial import EvaluationSets, TrialConfig, TrialEpoch, measure_test, run_trial
from .moasha import EPOCH, PROTECTED
from .probes import rung_probes
from .space import Space
from .study_searcher import ASSIGNMENT, STORAGE_FAULT


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
    constraints: tuple[Constraint, ...] = ()  # the run's bounds on cost (--constraint)


def search_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Ray Tune trainable: one trial, reporting its rungs and its record at the end."""
    import ray
    from ray import tune

    execute_trial(config[ASSIGNMENT], context, tune.report, ray.get_runtime_context().get_node_id())


def execute_trial(assignment: Assignment, context: TrialContext, report: Callable[[dict[str, Any]], None],
                  node: str = "") -> dict[str, Any]:
    """Run ``assignment`` into ``trials/<its trial id>`` on ``node`` (resuming it if it has a
    checkpoint, reading it back if it has a record), reporting rungs and the final objectives
    (measured on the validation split) through ``report``; returns the record. When the file system
    refuses the trial's writes (full, read-only), it reports :data:`STORAGE_FAULT` and returns an
    empty record: that is not the trial's result, and the trial stays resumable. A trial of the
    study measures the validation split only (:func:`measure_trial_test` adds the test split of the
    reported ones after the search); a confirmation seed measures both."""
    torch.set_num_threads(context.threads)
    settings = context.settings
    trial_dir = context.run_dir / TRIALS_DIR / assignment.trial_id
    tags = {Column.ORIGIN: assignment.origin, PROTECTED: is_paper(assignment.origin)}

    def on_epoch(epoch: TrialEpoch) -> None:
        # Only the scheduler reads epoch results, at its rungs: every other epoch is neither
        # measured nor reported (each report is a round trip through Ray Tune's driver).
        if epoch.report.epoch in context.rungs:
            report({EPOCH: epoch.report.epoch, "train_loss": epoch.report.train_loss, Column.STATUS: TrialStatus.RUNNING,
                    **tags, **rung_probes(epoch, context.sets, settings)})

    try:
        trial = TrialConfig.for_run(settings, assignment.configuration, assignment.seed)
        sharers = context.trials_per_node.get(node, max(context.trials_per_node.values()))
        device = _device()
        latency = LatencySetup(settings.latency_batch, settings.latency_device or device,
                               LatencyBackend(settings.latency_backend))
        record = run_trial(trial, trial_dir, context.sets, identity={**assignment.identity(), Column.NODE: node},
                           latency=latency, latency_cache=context.run_dir / LATENCY_DIR,
                           constraints=context.constraints, reference=is_paper(assignment.origin),
                           with_test=assignment.study_trial is None,
                           access=dataclasses.replace(context.access, sharers=sharers), device=device,
                           on_epoch=on_epoch)
    except Exception as error:  # noqa: BLE001 - a failing trial is a result: record it, the study goes on
        fault = storage_fault(error, trial_dir)
        if fault is not None:
            report({STORAGE_FAULT: fault})
            return {}
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        record = write_record(trial_dir, {**failed_record(assignment, reason), Column.NODE: node})
    report({EPOCH: record.get(Column.EPOCHS_COMPLETED, 0), Column.STATUS: record[Column.STATUS], **tags,
            **{o: record[validation_column(o)] for o in settings.objectives if validation_column(o) in record},
            **{c.column: record[c.column] for c in context.constraints if c.column in record}})
    return record


def measure_trial_test(assignment: Assignment, context: TrialContext) -> None:
    """A Ray task: the test-split measurements of a reported search trial, added to its record from
    its saved model (``training.trial.measure_test``), on the device of the worker it runs on."""
    torch.set_num_threads(context.threads)
    trial = TrialConfig.for_run(context.settings, assignment.configuration, assignment.seed)
    measure_test(trial, context.run_dir / TRIALS_DIR / assignment.trial_id, context.sets, access=context.access,
                 device=_device())


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
