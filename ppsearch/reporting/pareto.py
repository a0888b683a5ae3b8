"""Pareto analysis of a results table: fronts on any subset of the objectives (all minimised),
hypervolume, its history over the trials, and which of the papers' configurations the search
dominated, by which trials and by how much.

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
from ..rundir import Column, TrialStatus, is_paper

REFERENCE_MARGIN = 1.1


def completed(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """Trials that finished their budget with every objective measured (pruned and failed ones
    never enter a front)."""
    return table[table[Column.STATUS] == TrialStatus.COMPLETED].dropna(subset=list(objectives))


def front(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The completed rows of ``table`` that no other completed row dominates on ``objectives``."""
    rows = completed(table, objectives)
    if rows.empty:
        return rows
    return rows[_on_front(rows[list(objectives)].to_numpy(dtype=float))]


def _on_front(values: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated rows (duplicates of a front point stay on it)."""
    return moocore.is_nondominated(values, keep_weakly=True)


def reference_point(table: pd.DataFrame, objectives: Sequence[str]) -> np.ndarray:
    rows = completed(table, objectives)
    papers = rows[rows[Column.ORIGIN].map(is_paper)] if Column.ORIGIN in rows else rows.iloc[:0]
    anchor = papers if len(papers) else rows
    if anchor.empty:
        raise UserError("no completed trial has all of " + ", ".join(objectives))
    return REFERENCE_MARGIN * anchor[list(objectives)].max().to_numpy(dtype=float)


def hypervolume(table: pd.DataFrame, objectives: Sequence[str], reference: np.ndarray) -> float:
    return _hypervolume(completed(table, objectives)[list(objectives)].to_numpy(dtype=float), reference)


def _hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
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
        volume = _hypervolume(current, reference)
        history.append(volume)
    return pd.DataFrame({"trial": np.arange(1, len(rows) + 1), Column.TRIAL_ID: rows[Column.TRIAL_ID].to_numpy(),
                         "hypervolume": history})


def dominated_papers(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """One row per completed paper configuration: whether searched trials dominate it, which ones,
    and the margin of the best of them: the largest m such that some searched trial is better by at
    least m on every objective (0: equal on one objective)."""
    rows = completed(table, objectives)
    paper_rows = rows[Column.ORIGIN].map(is_paper).astype(bool)
    papers, found = rows[paper_rows], rows[~paper_rows]
    found_values = found[list(objectives)].to_numpy(dtype=float)
    out = []
    for paper in papers.itertuples(index=False):
        values = np.array([getattr(paper, o) for o in objectives], dtype=float)
        dominates = (found_values <= values).all(axis=1) & (found_values < values).any(axis=1)
        margins = (values - found_values[dominates]).min(axis=1)
        out.append({Column.ORIGIN: paper.origin, Column.TRIAL_ID: paper.trial_id, **dict(zip(objectives, values)),
                    "dominated": bool(dominates.any()),
                    "dominated_by": ", ".join(found[Column.TRIAL_ID].to_numpy()[dominates]),
                    "margin": float(margins.max()) if len(margins) else np.nan})
    return pd.DataFrame(out, columns=[Column.ORIGIN, Column.TRIAL_ID, *objectives, "dominated", "dominated_by", "margin"])


def pick(table: pd.DataFrame, objectives: Sequence[str], *, weights: Sequence[float] | None = None,
         max_clean_error_increase: float | None = None) -> pd.Series:
    """One configuration from the front. Objectives are scaled to [0, 1] over the front; without
    ``weights`` the pick is the knee: the point closest to the ideal (every objective at its best
    on the front); with ``weights`` it minimises their weighted sum. ``max_clean_error_increase``
    (percentage points) first drops front points whose clean error exceeds the plain paper
    configuration's (the completed paper row with ``placement == 'none'``) by more than that."""
    candidates = front(table, objectives)
    if candidates.empty:
        raise UserError("the run has no completed trial with all of " + ", ".join(objectives))
    if max_clean_error_increase is not None:
        plain = completed(table, [Column.CLEAN_ERROR])
        plain = plain[plain[Column.ORIGIN].map(is_paper).astype(bool) & (plain["placement"] == "none")]
        if plain.empty:
            raise UserError("--max-clean-error-increase needs a completed plain paper configuration (placement none)")
        limit = plain[Column.CLEAN_ERROR].min() + max_clean_error_increase / 100
        candidates = candidates[candidates[Column.CLEAN_ERROR] <= limit + 1e-12]
        if candidates.empty:
            raise UserError(f"no front configuration has clean error <= {limit:.4f} (the plain model's "
                             f"+ {max_clean_error_increase} points)")
    values = candidates[list(objectives)].to_numpy(dtype=float)
    low, span = values.min(0), np.ptp(values, 0)
    scaled = (values - low) / np.where(span > 0, span, 1)
    if weights is None:
        score = np.linalg.norm(scaled, axis=1)
    else:
        if len(weights) != len(objectives) or any(w < 0 for w in weights) or not any(weights):
            raise UserError(f"--objective-weights needs {len(objectives)} non-negative numbers, not all 0 "
                             f"(one per objective: {', '.join(objectives)}); got {list(weights)}")
        score = scaled @ np.asarray(weights, dtype=float)
    return candidates.iloc[int(np.argmin(score))]
