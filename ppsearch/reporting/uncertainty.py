"""What seeds say about a front: each configuration's mean and 95% interval over its seeds, the
probability that one configuration dominates another, and the hypervolume's interval.

Method (stated in every report): a configuration's seeds are resampled with replacement
(``RESAMPLES`` times, a fixed generator, each configuration independently), and a quantity is
computed on the resampled means; the probability that A dominates B is the share of resamples in
which A's means are no worse than B's on every objective and better on one. A bootstrap of one or
two seeds has (almost) no spread and overstates certainty, so a comparison is called a dominance
only where both configurations have ``MIN_SEEDS_FOR_VERDICT`` seeds.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..config import CONFIG_KEYS
from ..rundir import Column, TrialStatus, is_paper, validation_column
from .pareto import points_hypervolume
from .statistics import mean_ci

RESAMPLES = 10_000
HYPERVOLUME_RESAMPLES = 1_000
DEFAULT_DOMINANCE_THRESHOLD = 0.95
MIN_SEEDS_FOR_VERDICT = 3
METHOD = (f"bootstrap over seeds: each configuration's seeds resampled with replacement {RESAMPLES:,} times "
          f"(independently per configuration, fixed generator); P(A dominates B) is the share of resamples in "
          f"which A's means are no worse on every objective and better on one; intervals are Student's t 95% "
          f"over seeds; \"dominates\" needs at least {MIN_SEEDS_FOR_VERDICT} seeds on both sides (a bootstrap of fewer "
          f"overstates certainty)")


def configuration_id(table: pd.DataFrame) -> pd.Series:
    """Which configuration each row measures (a confirmation seed names the trial it repeats)."""
    if Column.CONFIG_ID in table:
        return table[Column.CONFIG_ID].fillna(table[Column.TRIAL_ID])
    return table[Column.TRIAL_ID]


def seed_values(table: pd.DataFrame, objectives: Sequence[str]) -> dict[str, np.ndarray]:
    """Configuration id -> (seeds, objectives) array of its completed rows' values."""
    done = table[table[Column.STATUS] == TrialStatus.COMPLETED].dropna(subset=list(objectives))
    ids = configuration_id(done)
    return {config: group[list(objectives)].to_numpy(dtype=float) for config, group in done.groupby(ids, sort=True)}


def configurations(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """One row per configuration with a completed seed: its id, origin, design keys, seed count,
    each objective's mean and 95% interval half-width over seeds (test split), and its mean on the
    validation split (what selection uses)."""
    done = table[table[Column.STATUS] == TrialStatus.COMPLETED].dropna(subset=list(objectives))
    rows = []
    for config, group in done.groupby(configuration_id(done), sort=True):
        search_row = group[group[Column.TRIAL_ID] == config]
        first = (search_row if len(search_row) else group).iloc[0]
        row = {Column.CONFIG_ID: config, Column.ORIGIN: first[Column.ORIGIN], "seeds": len(group)}
        row.update({k: first[k] for k in CONFIG_KEYS if k in group})
        for o in objectives:
            row[o], row[f"{o} ci95"] = mean_ci(group[o])
            if validation_column(o) in group:
                row[validation_column(o)] = group[validation_column(o)].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def _resampled_means(values: np.ndarray, generator: np.random.Generator, resamples: int) -> np.ndarray:
    picks = generator.integers(0, len(values), size=(resamples, len(values)))
    return values[picks].mean(axis=1)


def dominance_probability(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> float:
    """P(configuration A dominates B) from their (seeds, objectives) values, all minimised."""
    generator = np.random.default_rng(seed)
    mean_a, mean_b = _resampled_means(a, generator, resamples), _resampled_means(b, generator, resamples)
    return float(((mean_a <= mean_b).all(axis=1) & (mean_a < mean_b).any(axis=1)).mean())


def dominance_table(table: pd.DataFrame, objectives: Sequence[str], front_ids: Sequence[str],
                    threshold: float = DEFAULT_DOMINANCE_THRESHOLD) -> pd.DataFrame:
    """For each paper configuration and each searched front configuration: the probability that
    the latter dominates the former on the test values, and the verdict at ``threshold``."""
    values = seed_values(table, objectives)
    summary = configurations(table, objectives).set_index(Column.CONFIG_ID)
    papers = [c for c in summary.index if is_paper(summary.loc[c, Column.ORIGIN])]
    challengers = [c for c in front_ids if c in values and c not in papers]
    rows = []
    for paper in papers:
        for challenger in challengers:
            p = dominance_probability(values[challenger], values[paper])
            seeds = (len(values[challenger]), len(values[paper]))
            if min(seeds) < MIN_SEEDS_FOR_VERDICT:
                verdict = f"fewer than {MIN_SEEDS_FOR_VERDICT} seeds: not assessed"
            else:
                verdict = "dominates" if p >= threshold else "not shown"
            rows.append({"paper": summary.loc[paper, Column.ORIGIN], "paper_config": paper, "front_config": challenger,
                         "seeds (front, paper)": f"{seeds[0]}, {seeds[1]}", "p_dominates": p, "verdict": verdict})
    return pd.DataFrame(rows, columns=["paper", "paper_config", "front_config", "seeds (front, paper)", "p_dominates",
                                       "verdict"])


def hypervolume_interval(table: pd.DataFrame, objectives: Sequence[str], config_ids: Sequence[str],
                         reference: np.ndarray, resamples: int = HYPERVOLUME_RESAMPLES, seed: int = 0
                         ) -> tuple[float, float, float]:
    """Hypervolume of the mean points of ``config_ids`` and its 95% bootstrap interval (seeds
    resampled per configuration); the interval is (nan, nan) when no configuration has two seeds."""
    values = [v for c, v in seed_values(table, objectives).items() if c in set(config_ids)]
    if not values:
        return 0.0, np.nan, np.nan
    point = points_hypervolume(np.array([v.mean(axis=0) for v in values]), reference)
    if max(len(v) for v in values) < 2:
        return point, np.nan, np.nan
    generator = np.random.default_rng(seed)
    means = np.stack([_resampled_means(v, generator, resamples) for v in values], axis=1)  # (resamples, configs, m)
    volumes = [points_hypervolume(points, reference) for points in means]
    low, high = np.percentile(volumes, [2.5, 97.5])
    return point, float(low), float(high)
