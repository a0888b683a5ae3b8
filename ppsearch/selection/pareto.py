"""Pareto analysis of a results table: fronts on any subset of the objectives (all minimised),
hypervolume, its history over the trials, and the validation front a search selects (how sure a
dominance is lives in ``uncertainty``, picking one configuration in ``pick``).

Hypervolume and non-dominated filtering are moocore's (exact algorithms, public API). Reference point: for each
objective, 1.1 x the worst value that a paper configuration reached in the run (the worst over all
completed trials when the run has no paper configuration). The papers' configurations are part of
every run of a space and, for a given seed and budget, reach the same values, so searches of one
problem share the reference point and their hypervolumes compare; points beyond it add nothing.
"""
from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
import pandas as pd

from ..errors import UserError
from ..rundir import Column, completed, feasible, has_test_values, is_paper, search_trials, validation_column

REFERENCE_MARGIN = 1.1


def front(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The completed rows of ``table`` that no other completed row dominates on ``objectives``."""
    return nondominated(completed(table, objectives), objectives)


def nondominated(rows: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The rows that no other row dominates on ``objectives`` (duplicates of a front point stay)."""
    if rows.empty:
        return rows
    return rows[moocore.is_nondominated(rows[list(objectives)].to_numpy(dtype=float), keep_weakly=True)]


def validation_front(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The selection: the search trials that meet the run's constraints and that no other such
    trial dominates on ``objectives`` measured on the validation split (empty where the table has
    no validation values). A paper configuration that breaks a constraint stays a reference on the
    plots, never on the front."""
    selection = [validation_column(o) for o in objectives]
    search = feasible(search_trials(table))
    if not all(c in search for c in selection):
        return search.iloc[:0]
    return front(search, selection)


def reported_trials(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The completed search trials whose configurations every report states test values for: the
    validation front's and the papers' (the other search trials are measured on validation only)."""
    done = completed(search_trials(table))
    papers = done[Column.ORIGIN].map(is_paper).astype(bool)
    return done[papers | done[Column.TRIAL_ID].isin(validation_front(table, objectives)[Column.TRIAL_ID])]


def untested_reported(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The reported search trials that have no test values yet (an interrupted run's, or a run's
    still searching)."""
    reported = reported_trials(table, objectives)
    return reported[~has_test_values(reported)]


def reference_point(table: pd.DataFrame, objectives: Sequence[str]) -> np.ndarray:
    rows = completed(table, objectives)
    papers = rows[rows[Column.ORIGIN].map(is_paper)] if Column.ORIGIN in rows else rows.iloc[:0]
    anchor = papers if len(papers) else rows
    if anchor.empty:
        raise UserError("no completed trial has all of " + ", ".join(objectives))
    return REFERENCE_MARGIN * anchor[list(objectives)].max().to_numpy(dtype=float)


def hypervolume(table: pd.DataFrame, objectives: Sequence[str], reference: np.ndarray) -> float:
    return points_hypervolume(completed(table, objectives)[list(objectives)].to_numpy(dtype=float), reference)


def points_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume of ``points`` (rows, all minimised) dominated within ``reference``."""
    points = points[(points < reference).all(axis=1)]
    if not len(points):
        return 0.0
    return float(moocore.hypervolume(points, ref=reference))


def hypervolume_history(table: pd.DataFrame, objectives: Sequence[str], reference: np.ndarray,
                        order: str = Column.FINISHED_AT) -> pd.DataFrame:
    """Hypervolume of the trials finished so far, after each completed trial in ``order``. It is
    recomputed only when a trial enters the front (a dominated one leaves it unchanged)."""
    rows = completed(table, objectives).sort_values(order, kind="stable")
    values = rows[list(objectives)].to_numpy(dtype=float)
    current, volume, history = np.empty((0, len(objectives))), 0.0, []
    for point in values:
        if not (point < reference).all() or (current <= point).all(axis=1).any():
            history.append(volume)
            continue
        current = np.vstack([current[~(point <= current).all(axis=1)], point])
        volume = points_hypervolume(current, reference)
        history.append(volume)
    return pd.DataFrame({"trial": np.arange(1, len(rows) + 1), Column.TRIAL_ID: rows[Column.TRIAL_ID].to_numpy(),
                         "hypervolume": history})
