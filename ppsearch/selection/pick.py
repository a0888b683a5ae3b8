"""`ppsearch pick`: one configuration from a run's validation front, chosen on validation means,
reported with its test estimate (confirmation seeds only: the selected seed is biased by the
selection) and its comparison with the plain paper model."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..config import Design
from ..errors import UserError
from ..rundir import Column, is_paper, validation_column
from .pareto import validation_front
from .uncertainty import Comparison, compare, configurations, cost_tolerances, seed_values


def pick(table: pd.DataFrame, objectives: Sequence[str], *, weights: Sequence[float] | None = None,
         max_clean_error_increase: float | None = None, max_latency_ms: float | None = None,
         max_flops_ratio: float | None = None) -> pd.Series:
    """The chosen configuration's row of :func:`~ppsearch.selection.uncertainty.configurations`.

    Candidates are the validation front's configurations, compared on their validation means scaled
    to [0, 1] over the front: without ``weights`` the knee (closest to the ideal, every objective at
    its best on the front), with ``weights`` the least weighted sum. ``max_clean_error_increase``
    (percentage points) first drops candidates whose validation clean error exceeds the plain paper
    configuration's (no push-pull, no anti-aliasing) by more than that; ``max_latency_ms`` those measured slower,
    ``max_flops_ratio`` those with more than that many times the plain paper configuration's FLOPs.
    """
    selection = [validation_column(o) for o in objectives]
    summary = configurations(table, objectives)
    front_ids = set(validation_front(table, objectives)[Column.TRIAL_ID])
    candidates = summary[summary[Column.CONFIG_ID].isin(front_ids)] if len(summary) else summary
    if candidates.empty:
        raise UserError("the run has no completed trial with all of " + ", ".join(objectives) + " on validation images")
    if max_clean_error_increase is not None:
        plain = plain_paper(summary)
        if plain is None or validation_column(Column.CLEAN_ERROR) not in summary:
            raise UserError("--max-clean-error-increase needs a completed plain paper configuration (no push-pull, no "
                            "anti-aliasing)")
        limit = plain[validation_column(Column.CLEAN_ERROR)] + max_clean_error_increase / 100
        candidates = candidates[candidates[validation_column(Column.CLEAN_ERROR)] <= limit + 1e-12]
        if candidates.empty:
            raise UserError(f"no front configuration has validation clean error <= {limit:.4f} (the plain model's "
                            f"+ {max_clean_error_increase} points)")
    candidates = _within_cost(table, summary, candidates, max_latency_ms, max_flops_ratio)
    values = candidates[selection].to_numpy(dtype=float)
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


def _within_cost(table: pd.DataFrame, summary: pd.DataFrame, candidates: pd.DataFrame, max_latency_ms: float | None,
                 max_flops_ratio: float | None) -> pd.DataFrame:
    """The ``candidates`` within the cost limits (each configuration's cost is its search trial's:
    the same on every seed)."""
    limits = {Column.LATENCY_MS: max_latency_ms}
    if max_flops_ratio is not None:
        plain = plain_paper(summary)
        if plain is None or Column.FLOPS not in table:
            raise UserError("--max-flops-ratio needs a completed plain paper configuration (no push-pull, no anti-aliasing) "
                            "to divide by")
        limits[Column.FLOPS] = max_flops_ratio * table.loc[table[Column.TRIAL_ID] == plain[Column.CONFIG_ID],
                                                           Column.FLOPS].iloc[0]
    for metric, limit in limits.items():
        if limit is None:
            continue
        if metric not in table:
            raise UserError(f"the run's trials did not record {metric}: it predates cost measurements")
        cost = table.set_index(Column.TRIAL_ID)[metric]
        kept = candidates[candidates[Column.CONFIG_ID].map(cost) <= limit * (1 + 1e-12)]
        if kept.empty:
            cheapest = candidates[Column.CONFIG_ID].map(cost).min()
            raise UserError(f"no front configuration left has {metric} <= {limit:.6g} (the cheapest has {cheapest:.6g})")
        candidates = kept
    return candidates


def plain_paper(rows: pd.DataFrame) -> pd.Series | None:
    """The plain paper configuration's row (no push-pull, no anti-aliasing: ``Design.is_plain``)
    among ``rows`` (configurations, or a table's trials), if they hold one."""
    if rows.empty or "placement" not in rows:
        return None
    plain = rows[rows[Column.ORIGIN].map(is_paper).astype(bool)
                 & rows.apply(lambda row: Design.from_mapping(row).is_plain, axis=1)]
    return plain.iloc[0] if len(plain) else None


def against_plain(table: pd.DataFrame, row: pd.Series, objectives: Sequence[str], alpha: float) -> Comparison | None:
    """``row``'s configuration against the plain paper configuration on the test values that
    estimate each (``uncertainty.compare``, this one comparison at ``alpha``); None without a plain
    paper configuration, or when ``row`` is it."""
    plain = plain_paper(configurations(table, objectives))
    if plain is None or plain[Column.CONFIG_ID] == row[Column.CONFIG_ID]:
        return None
    values = seed_values(table, objectives)
    empty = np.empty((0, len(objectives)))
    tolerances = cost_tolerances(table, objectives)
    return compare(values.get(row[Column.CONFIG_ID], empty), values.get(plain[Column.CONFIG_ID], empty), alpha,
                   tolerances[row[Column.CONFIG_ID]] + tolerances[plain[Column.CONFIG_ID]])
