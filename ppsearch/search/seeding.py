"""`ppsearch run --seed-from RUN_DIR ...`: start a search from the designs on earlier runs' fronts.

The inhibition designs (the design keys) on the validation front of each earlier run are carried
into the new space; the architecture, augmentation and recipe are the new space's. A design becomes
a trial of the new run, enqueued after the papers' configurations and tagged
``front:<run name>:<trial>``: it is trained and measured like any other trial, enters the new front
on its own values, and the sampler learns from those. Nothing measured in the earlier run is told
to the new study: it was measured on another architecture, dataset or budget.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Design, typed_config
from ..errors import UserError
from ..rundir import FINAL_STATUSES, SEARCHED, Column, front_origin, load_run, search_trials
from ..selection.pareto import validation_front
from .space import Space


@dataclasses.dataclass(frozen=True)
class SeededDesigns:
    """What a new run takes from earlier fronts: (origin, search point) pairs to enqueue, and one
    line for each front design it skips, saying why."""

    enqueued: tuple[tuple[str, dict[str, Any]], ...]
    skipped: tuple[str, ...]


def check_seed_run(run_dir: str | Path, objectives: Sequence[str]) -> pd.DataFrame:
    """The results table of ``run_dir``, a finished search run with the same objectives, or a
    one-line error."""
    table, settings = load_run(run_dir)
    unfinished = table[~table[Column.STATUS].isin(FINAL_STATUSES)]
    searched = (search_trials(table)[Column.ORIGIN] == SEARCHED).sum()
    if len(unfinished) or searched < settings.trials:
        raise UserError(f"--seed-from {run_dir} is not a finished run ({len(unfinished)} trials still open, "
                        f"{searched} of its {settings.trials} searched trials ended): finish it first "
                        f"(rerun its command)")
    if set(settings.objectives) != set(objectives):
        raise UserError(f"--seed-from {run_dir} optimised {', '.join(settings.objectives)}, this run optimises "
                        f"{', '.join(objectives)}: a front is only a front for its own objectives")
    return table


def seeded_designs(space: Space, objectives: Sequence[str], run_dirs: Sequence[str | Path]) -> SeededDesigns:
    """The designs on the validation fronts of ``run_dirs`` (finished runs, checked) that ``space``
    can express, as search points of ``space``, in front order, each once; a design that is
    already one of the space's paper configurations is left to that paper."""
    tables = {run_dir: check_seed_run(run_dir, objectives) for run_dir in run_dirs}  # every run checked first
    enqueued: list[tuple[str, dict[str, Any]]] = []
    skipped: list[str] = []
    seen: dict[tuple, str] = {}
    for run_dir, table in tables.items():
        for row in validation_front(table, tuple(objectives)).to_dict("records"):
            origin = front_origin(Path(run_dir).resolve().name, row[Column.TRIAL_ID])
            wanted = Design.from_mapping(typed_config(row)).signature()
            point, problem = space.express(wanted)
            key = tuple(sorted(wanted.items(), key=lambda kv: kv[0]))
            if problem is None and key in seen:
                problem = f"the same design as {seen[key]}"
            if problem is None:
                seen[key] = origin
                enqueued.append((origin, point))
            else:
                skipped.append(f"{origin} ({_describe(wanted)}): skipped, {problem}")
    return SeededDesigns(tuple(enqueued), tuple(skipped))


def _describe(signature: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in signature.items())
