"""Tables of trial records: written as parquet (typed, for analysis) and CSV (for people), and
summarised over seeds as mean +- 95% confidence interval (Student's t)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from scipy import stats


def write_table(records: pd.DataFrame, path_stem: str | Path) -> tuple[Path, Path]:
    """``<stem>.parquet`` and ``<stem>.csv``, each written beside and renamed over the old one."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    for path, write in zip(paths, (records.to_parquet, records.to_csv)):
        tmp = path.with_name(path.name + ".partial")
        write(tmp, index=False)
        tmp.replace(path)
    return paths


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



def read_run_table(run_dir: str | Path) -> pd.DataFrame:
    """The table of a run directory: a search's ``results.parquet`` or a ``ppsearch train`` run's
    ``records.parquet``, completed trials only, with an ``origin`` column either way."""
    run_dir = Path(run_dir)
    for name in ("results.parquet", "records.parquet"):
        if (run_dir / name).is_file():
            table = pd.read_parquet(run_dir / name)
            break
    else:
        raise ValueError(f"{run_dir} holds neither results.parquet (ppsearch run) nor records.parquet (ppsearch train)")
    if "origin" not in table:
        table["origin"] = run_dir.name
    return table[table["status"] == "completed"]
