"""Values over seeds summarised as mean +- 95% confidence interval (Student's t)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its ``confidence`` interval (NaN for fewer than two values)."""
    series = pd.Series(values, dtype=float).dropna()
    n = len(series)
    if n < 2:
        return (series.mean() if n else math.nan), math.nan
    return float(series.mean()), float(half_width(series.std(ddof=1), n, confidence))


def half_width(std, n, confidence: float = 0.95):
    """Half-width of the Student's t interval of a mean from its values' standard deviation and
    count (scalars, or arrays of several means at once); NaN below two values."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.t.ppf((1 + confidence) / 2, np.where(n >= 2, n - 1, np.nan))
        return t * np.asarray(std, dtype=float) / np.sqrt(n)


def seed_summary(records: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """One row per metric column: mean, 95% CI half-width and the number of seeds behind them."""
    rows = []
    for column in columns:
        if column in records:
            mean, half = mean_ci(records[column])
            rows.append({"metric": column, "mean": mean, "ci95": half, "seeds": int(records[column].notna().sum())})
    return pd.DataFrame(rows, columns=["metric", "mean", "ci95", "seeds"])
