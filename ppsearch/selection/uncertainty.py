"""What seeds say about a front: each configuration's mean and interval over its seeds, calibrated
verdicts on whether one configuration dominates another, and the front's hypervolume interval.

Unbiased estimates. A searched configuration entered the validation front through the model of
its search seed, so that model's test values are optimistically biased (winner's curse): a
searched configuration on the front is estimated from its confirmation seeds only, and its selected
seed is shown beside them, marked, never averaged in. A paper configuration, or a searched one the
front left out, was not selected: all of its seeds count.

Verdicts (``compare``). Per objective, a one-sided Welch t-test of "A's mean is lower" and one of
"B's mean is lower". "A dominates B" is an intersection-union test: every objective's test must
reject, so its p-value is the largest of the objectives' (valid at any number of objectives
without splitting the level over them). The two directions are tested at half the level each, so
that a false verdict of either kind happens at most at the stated level. A report makes many
comparisons (every front configuration against every paper configuration): Holm's step-down
correction over that family keeps the chance of any false verdict in it at the level. Beside
each verdict: each objective's difference of means with its 95% Welch interval (not adjusted).

Costs. Params and FLOPs are counted, and latency is measured once per configuration (the median
of its timed passes) and recorded on every seed: a cost has no seed variance, so a t-test cannot
treat it (a zero standard error) and needs none. It is compared exactly: "A's cost is lower" is
rejected with p = 0 when it is lower by more than the objective's tolerance, and p = 1 otherwise
(a tie, or a difference within the tolerance), its interval is the difference itself. Latency's
tolerance is the sum of the two measurements' interquartile ranges, so that a difference the
machine's timing noise could make is a tie; params and FLOPs have none. An exact test of a known
quantity never rejects a true null, so the intersection-union test keeps its level and Holm's
family error rate is unchanged; for latency the known quantity is the measured median, with the
tie rule against timing noise. Only an objective known to be a cost is treated so (``compare``'s
``tolerance``, from ``cost_tolerances``): an error objective that happens to show no spread over
a few seeds is no certainty, and gets no test.

Hypervolume interval. The hypervolume of the front's means is a smooth function of those means
away from ties, so its standard error follows from the delta method (gradient by central
differences, each configuration's seed covariance); the interval is Student's t with the smallest
configuration's seeds less one as degrees of freedom. It is given only where every front
configuration has ``MIN_SEEDS_FOR_HYPERVOLUME`` unbiased seeds; the suite checks its coverage by
simulation.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy import stats

from ..config import CONFIG_KEYS
from ..rundir import COST_METRICS, Column, completed, is_paper, validation_column
from .pareto import points_hypervolume, validation_front
from .statistics import half_width

DEFAULT_ALPHA = 0.05
MIN_SEEDS_FOR_TEST = 2  # a variance needs two seeds a side
MIN_SEEDS_FOR_HYPERVOLUME = 3


class Verdict(StrEnum):
    DOMINATES = "dominates"
    DOMINATED = "dominated"
    NOT_SHOWN = "not shown"


UNTESTED = f"{Verdict.NOT_SHOWN}: fewer than {MIN_SEEDS_FOR_TEST} seeds a side"  # no test could run


def method_text(alpha: float, racing: bool = False) -> str:
    """The verdicts' method and level, as every report states it."""
    family = ("Holm-corrected over the undecided pairs at each look of the adaptive confirmation, the level "
              f"alpha = {alpha:g} spent over the looks (half shared by the early looks, half at the last)"
              if racing else f"Holm-corrected over every comparison of the report, alpha = {alpha:g}")
    return (f"\"A dominates B\": a one-sided test on every objective rejects \"A is not better\" "
            f"(intersection-union test; each direction at half the level), {family}: the chance of any false "
            f"verdict in the report is at most {alpha:g}. Errors get Welch's t-test over seeds; costs (params, "
            f"FLOPs, latency) are known per configuration and compared exactly (a test that never errs), a latency "
            f"difference within the two measurements' summed interquartile ranges counting as a tie. A searched "
            f"configuration on the validation front is estimated from its confirmation seeds only (its selected "
            f"seed is biased by the selection and shown apart); every other configuration from all its seeds. "
            f"Intervals are Student's t 95% over seeds, a cost's 0 (latency's: half its timings' interquartile "
            f"range); differences carry 95% Welch intervals (not adjusted), a cost's none (exact)")


def ci_column(objective: str) -> str:
    return f"{objective} ci95"


def selected_column(objective: str) -> str:
    """A searched configuration's test value on its selected (search) seed: shown, never averaged."""
    return f"{objective} selected seed"


def configuration_id(table: pd.DataFrame) -> pd.Series:
    """Which configuration each row measures (a confirmation seed names the trial it repeats)."""
    if Column.CONFIG_ID in table:
        return table[Column.CONFIG_ID].fillna(table[Column.TRIAL_ID])
    return table[Column.TRIAL_ID]


def selected_rows(table: pd.DataFrame, objectives: Sequence[str]) -> pd.Series:
    """The rows whose model the search selected: the search trial of each searched configuration on
    the validation front (a paper configuration, a confirmation seed, or a configuration the
    front left out was not selected)."""
    front = set(validation_front(table, objectives)[Column.TRIAL_ID])
    return (table[Column.TRIAL_ID].isin(front) & (table[Column.TRIAL_ID] == configuration_id(table))
            & ~table[Column.ORIGIN].map(is_paper).astype(bool))


def seed_values(table: pd.DataFrame, objectives: Sequence[str],
                config_ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Configuration id -> (seeds, objectives) array of the values that estimate it: its completed
    rows less a searched configuration's selected seed (for ``config_ids`` only, when given)."""
    done = completed(table, objectives)
    done = done[~selected_rows(done, objectives)]
    ids = configuration_id(done)
    if config_ids is not None:
        done, ids = done[ids.isin(config_ids)], ids[ids.isin(config_ids)]
    return {config: group[list(objectives)].to_numpy(dtype=float) for config, group in done.groupby(ids, sort=True)}


def _cost_spreads(done: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """Per configuration of the completed rows ``done`` (index) and objective (columns): how far its
    recorded cost may be from a repeat measurement: 0 for params and FLOPs (counted), the timings'
    interquartile range for latency (0 where the table has none), NaN for an objective measured with
    seed noise (not a cost)."""
    ids = configuration_id(done).rename(Column.CONFIG_ID)
    latency = (done[Column.LATENCY_SPREAD_MS].astype(float).fillna(0.0) if Column.LATENCY_SPREAD_MS in done
               else pd.Series(0.0, index=done.index))
    latency = latency.groupby(ids, sort=True).max()  # every seed records its configuration's one measurement
    return pd.DataFrame({o: latency if o == Column.LATENCY_MS else (0.0 if o in COST_METRICS else math.nan)
                         for o in objectives}, index=latency.index)


def cost_tolerances(table: pd.DataFrame, objectives: Sequence[str]) -> dict[str, np.ndarray]:
    """Configuration id -> per objective, its share of the margin within which an exact comparison
    is a tie; a pair's ``compare`` tolerance is the sum of its two configurations' shares: 0 for
    params and FLOPs, the sum of the two latency measurements' interquartile ranges for latency,
    NaN for an error objective (never compared exactly: it varies over seeds)."""
    spreads = _cost_spreads(completed(table, objectives), objectives)
    return {config: row.to_numpy(dtype=float) for config, row in spreads.iterrows()}


def configurations(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """One row per configuration with a completed seed: its id, origin, design keys, the number of
    seeds that estimate it and of all its completed seeds, each objective's mean and 95% interval
    half-width over those seeds (test split; NaN where a searched configuration has no confirmation
    seed yet), a searched configuration's selected-seed values apart, and its validation mean (what
    selection used: the selected seed's where there is one).

    A cost's interval is no interval over seeds (it has no seed variance): params' and FLOPs' is 0
    (counted), latency's is half its timings' interquartile range, so that mean +- interval spans
    that range: its measurement spread, not a 95% interval."""
    done = completed(table, objectives)
    if done.empty:
        return pd.DataFrame()
    ids = configuration_id(done).rename(Column.CONFIG_ID)
    selected = selected_rows(done, objectives)
    everything, chosen, estimating = (done.groupby(ids[mask], sort=True) for mask in
                                      (selected | ~selected, selected, ~selected))
    # a configuration's descriptive columns from its selected row where it has one
    keys = [Column.ORIGIN, *(k for k in CONFIG_KEYS if k in done)]
    summary = chosen[keys].first().combine_first(everything[keys].first())[keys]
    seeds = estimating.size().reindex(summary.index, fill_value=0)
    summary = summary.assign(seeds=seeds, **{"seeds spent": everything.size()})
    spreads = _cost_spreads(done, objectives)
    for o in objectives:
        summary[o] = estimating[o].mean()
        summary[ci_column(o)] = ((spreads[o] / 2).where(summary[o].notna()) if o in COST_METRICS
                                 else half_width(estimating[o].std(ddof=1).reindex(seeds.index), seeds))
        summary[selected_column(o)] = chosen[o].first()
        if validation_column(o) in done:
            summary[validation_column(o)] = chosen[validation_column(o)].mean().combine_first(
                everything[validation_column(o)].mean())
    return summary.reset_index()


@dataclass(frozen=True)
class Comparison:
    """A against B on every objective (all minimised)."""

    verdict: Verdict
    p_value: float  # of the verdict drawn (the smaller direction's, doubled): compare it with alpha
    p_dominates: float  # intersection-union p-value of "A is better on every objective"
    p_dominated: float  # the same for B
    p_values: tuple[float, ...]  # per objective, one-sided: "A's mean is lower"
    differences: tuple[float, ...]  # mean A - mean B per objective (negative: A better)
    intervals: tuple[tuple[float, float], ...]  # 95% Welch interval of each difference ([d, d] where exact)
    seeds: tuple[int, int]


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: difference of means (a - b), its standard error and Welch's degrees of freedom."""
    va, vb = a.var(axis=0, ddof=1) / len(a), b.var(axis=0, ddof=1) / len(b)
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return a.mean(axis=0) - b.mean(axis=0), se, df


def compare(a: np.ndarray, b: np.ndarray, alpha: float = DEFAULT_ALPHA,
            tolerance: Sequence[float] | np.ndarray | None = None) -> Comparison:
    """Does configuration A dominate B (or B dominate A), from their (seeds, objectives) values?

    An objective whose values are constant over A's seeds and over B's (a cost) is compared
    exactly, a difference within its ``tolerance`` (per objective; default 0) being a tie; NaN in
    ``tolerance`` marks an objective that varies over seeds, never compared exactly
    (:func:`cost_tolerances` gives a pair's). Every other objective gets Welch's test.

    The verdict is drawn at ``alpha`` for this comparison alone; a family of comparisons is
    corrected by :func:`holm` (as :func:`dominance_table` does). With fewer than two seeds on a
    side, or no spread on an objective that is not compared exactly, nothing is shown.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A and B must have the same objectives (columns), got {a.shape[1]} and {b.shape[1]}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    margin = np.zeros(a.shape[1]) if tolerance is None else np.asarray(tolerance, dtype=float)
    if margin.shape != (a.shape[1],) or (margin < 0).any():
        raise ValueError(f"tolerance must hold one non-negative number (or NaN) per objective, got {tolerance!r}")
    seeds = (len(a), len(b))
    if min(seeds) < MIN_SEEDS_FOR_TEST:
        nan = (math.nan,) * a.shape[1]
        means = tuple(a.mean(axis=0) - b.mean(axis=0)) if min(seeds) else nan
        return Comparison(Verdict.NOT_SHOWN, math.nan, math.nan, math.nan, nan, means,
                          ((math.nan, math.nan),) * a.shape[1], seeds)
    difference, se, df = _welch(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = difference / se
    exact = (np.ptp(a, axis=0) == 0) & (np.ptp(b, axis=0) == 0) & ~np.isnan(margin)
    # otherwise no spread at all: no test (a zero standard error would call any difference certain)
    p_lower = np.where(exact, (difference >= -margin).astype(float), np.where(se > 0, stats.t.cdf(t, df), math.nan))
    p_higher = np.where(exact, (difference <= margin).astype(float), np.where(se > 0, stats.t.sf(t, df), math.nan))
    half = np.where(exact, 0.0, np.where(se > 0, stats.t.ppf(0.975, df) * se, math.nan))
    p_dominates, p_dominated = float(np.max(p_lower)), float(np.max(p_higher))
    p_value = min(1.0, 2 * min(p_dominates, p_dominated))
    verdict = Verdict.NOT_SHOWN
    if p_value <= alpha:
        verdict = Verdict.DOMINATES if p_dominates < p_dominated else Verdict.DOMINATED
    return Comparison(verdict, p_value, p_dominates, p_dominated, tuple(p_lower.tolist()), tuple(difference.tolist()),
                      tuple(zip((difference - half).tolist(), (difference + half).tolist())), seeds)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (reject where <= alpha); NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def decide(comparisons: Sequence[Comparison], level: float) -> list[Verdict]:
    """The verdicts of a family of comparisons: Holm over the family at ``level``."""
    adjusted = holm([c.p_value for c in comparisons])
    return [c.verdict if q <= level else Verdict.NOT_SHOWN for c, q in zip(comparisons, adjusted)]


DOMINANCE_COLUMNS = ["paper", "paper_config", "front_config", "seeds (front, paper)", "verdict", "p", "p (Holm)"]


def dominance_table(table: pd.DataFrame, objectives: Sequence[str], front_ids: Sequence[str],
                    alpha: float = DEFAULT_ALPHA, decided: Mapping[tuple[str, str], tuple[Verdict, int]] | None = None,
                    adjusted: Mapping[tuple[str, str], float] | None = None) -> pd.DataFrame:
    """Every searched front configuration against every paper configuration on the test values
    (searched ones without their selected seed): the verdict, the p-values, and per objective the
    difference of means with its 95% interval. Verdicts are drawn with Holm's correction over the
    table's comparisons at ``alpha``, or, for a racing confirmation, are its ``decided`` pairs
    ((front, paper) -> verdict and round) with their ``adjusted`` p-values (``selection.racing``)."""
    summary = configurations(table, objectives)
    summary = summary.set_index(Column.CONFIG_ID) if len(summary) else summary
    papers = [c for c in summary.index if is_paper(summary.loc[c, Column.ORIGIN])]
    challengers = [c for c in front_ids if c in summary.index and not is_paper(summary.loc[c, Column.ORIGIN])]
    values = seed_values(table, objectives, papers + challengers)
    tolerances = cost_tolerances(table, objectives)
    papers = [c for c in papers if c in values]
    empty = np.empty((0, len(objectives)))
    pairs = [(paper, challenger) for paper in papers for challenger in challengers]
    comparisons = [compare(values.get(challenger, empty), values[paper], alpha,
                           tolerances[challenger] + tolerances[paper]) for paper, challenger in pairs]
    if decided is None:
        verdicts, holm_p = decide(comparisons, alpha), list(holm([c.p_value for c in comparisons]))
    else:
        verdicts = [decided.get((f, p), (Verdict.NOT_SHOWN, 0))[0] for p, f in pairs]
        holm_p = [(adjusted or {}).get((f, p), math.nan) for p, f in pairs]
    rows = []
    for (paper, challenger), comparison, verdict, q in zip(pairs, comparisons, verdicts, holm_p):
        row = {"paper": summary.loc[paper, Column.ORIGIN], "paper_config": paper, "front_config": challenger,
               "seeds (front, paper)": f"{comparison.seeds[0]}, {comparison.seeds[1]}",
               "verdict": verdict if min(comparison.seeds) >= MIN_SEEDS_FOR_TEST
               else UNTESTED,
               "p": comparison.p_value, "p (Holm)": q}
        if decided is not None:
            row["decided at round"] = decided.get((challenger, paper), (None, math.nan))[1]
        for o, difference, (low, high) in zip(objectives, comparison.differences, comparison.intervals):
            row[f"{o} difference"] = difference
            row[f"{o} 95% interval"] = "" if math.isnan(low) else f"[{low:+.4f}, {high:+.4f}]"
        rows.append(row)
    extra = (["decided at round"] if decided is not None else []) + [
        f"{o} {part}" for o in objectives for part in ("difference", "95% interval")]
    return pd.DataFrame(rows, columns=DOMINANCE_COLUMNS + extra)


def hypervolume_interval(table: pd.DataFrame, objectives: Sequence[str], config_ids: Sequence[str],
                         reference: np.ndarray) -> tuple[float, float, float]:
    """Hypervolume of the mean points of ``config_ids`` (unbiased estimates) and its 95% interval
    (delta method, see the module's docstring); the interval is (nan, nan) unless every one of them
    has ``MIN_SEEDS_FOR_HYPERVOLUME`` unbiased seeds."""
    by_config = seed_values(table, objectives, list(config_ids))
    values = [by_config.get(c, np.empty((0, len(objectives)))) for c in dict.fromkeys(config_ids)]
    return hypervolume_of_means(values, np.asarray(reference, dtype=float))


def hypervolume_of_means(values: Sequence[np.ndarray], reference: np.ndarray) -> tuple[float, float, float]:
    """Hypervolume of the means of ``values`` (one (seeds, objectives) array per configuration) and
    its 95% delta-method interval (nan, nan where a configuration has too few seeds; all nan where
    one has none: leaving it out would understate the front)."""
    if not values or min(len(v) for v in values) == 0:
        return math.nan, math.nan, math.nan
    means = np.array([v.mean(axis=0) for v in values])
    point = points_hypervolume(means, reference)
    smallest = min(len(v) for v in values)
    if smallest < MIN_SEEDS_FOR_HYPERVOLUME:
        return point, math.nan, math.nan
    step = 1e-6 * np.maximum(np.abs(reference), 1e-3)
    variance = 0.0
    for i, v in enumerate(values):
        gradient = np.empty(means.shape[1])
        for j in range(means.shape[1]):
            up, down = means.copy(), means.copy()
            up[i, j] += step[j]
            down[i, j] -= step[j]
            gradient[j] = (points_hypervolume(up, reference) - points_hypervolume(down, reference)) / (2 * step[j])
        variance += gradient @ np.cov(v, rowvar=False, ddof=1).reshape(means.shape[1], -1) @ gradient / len(v)
    half = stats.t.ppf(0.975, smallest - 1) * math.sqrt(variance)
    return point, point - half, point + half
