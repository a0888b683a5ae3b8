"""Values over seeds summarised as mean +- 95% confidence interval (Student's t)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its ``confidence`` interval (NaN for fewer than two values)."""
    series = pd.Series(values, dtype=float).dropna()
    n = len(series)
    if n < 2:
        return (series.mean() if n else math.nan), math.nan
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * series.std(ddof=1) / math.sqrt(n)
    return float(series.mean()), float(half)


def seed_summary(records: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """One row per metric column: mean, 95% CI half-width and the number of seeds behind them."""
    rows = []
    for column in columns:
        if column in records:
            mean, half = mean_ci(records[column])
            rows.append({"metric": column, "mean": mean, "ci95": half, "seeds": int(records[column].notna().sum())})
    return pd.DataFrame(rows, columns=["metric", "mean", "ci95", "seeds"])
