"""Time of `ppsearch report` on a synthetic 1,000-trial results table (target <= 5 s on a 2-core CPU).

The table has the columns a resnet-cifar run writes (configuration, status, objectives, CE per
corruption, FP per perturbation, finished_at), random but plausible values, 14 paper rows, 10%
pruned and 2% failed trials; no Optuna journal, so the importance section is left out (Optuna's
evaluator on 1,000 trials is its own cost, reported separately below when --importance is given).

    python benchmarks/bench_report.py [--trials 1000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ppsearch.config import ANTIALIAS_FILTERS, KEYS, PLACEMENTS, VARIANTS
from ppsearch.reporting.report import write_report
from ppsearch.robustness.corruptions import BENCHMARK_CORRUPTIONS
from ppsearch.robustness.perturbations import TEST_PERTURBATIONS
from ppsearch.rundir import (
    CE_PREFIX,
    FP_PREFIX,
    OBJECTIVES,
    RESULTS_STEM,
    SEARCHED,
    Column,
    RunSettings,
    TrialStatus,
    paper_origin,
    validation_column,
    write_settings,
    write_table,
)
from ppsearch.search.space import load_space


def synthetic_table(trials: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    space = load_space("resnet-cifar")
    papers = list(space.paper_configs)
    rows = []
    for i in range(trials):
        config = {**{name: key.default for name, key in KEYS.items()}, "recipe": "fast",
                  "placement": rng.choice(PLACEMENTS), "variant": rng.choice(VARIANTS),
                  "scale": float(rng.choice([1.5, 2.0, 3.0])), "alpha": float(rng.uniform(0.25, 2)),
                  "antialias": rng.choice(list(ANTIALIAS_FILTERS))}
        status = TrialStatus.COMPLETED if rng.random() > 0.12 else \
            rng.choice([TrialStatus.PRUNED, TrialStatus.FAILED], p=[0.85, 0.15])
        clean = rng.uniform(0.07, 0.2)
        origin = paper_origin(papers[i]) if i < len(papers) else SEARCHED
        row = {Column.TRIAL_ID: f"{i:08x}", Column.CONFIG_ID: f"{i:08x}", Column.ORIGIN: origin,
               Column.STATUS: str(status), **config, Column.BUDGET_REACHED: 200 if status == TrialStatus.COMPLETED else 3,
               Column.FINISHED_AT: f"2026-11-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}"}
        if status == TrialStatus.COMPLETED:
            row.update({Column.CLEAN_ERROR: clean, Column.MCE: rng.uniform(0.7, 1.2) - clean,
                        Column.MFR: rng.uniform(0.6, 1.2), Column.RELATIVE_MCE: rng.uniform(1, 2),
                        **{f"{CE_PREFIX}{c}": rng.uniform(0.3, 1.5) for c in BENCHMARK_CORRUPTIONS},
                        **{f"{FP_PREFIX}{p}": rng.uniform(0, 0.1) for p in TEST_PERTURBATIONS}})
            row.update({validation_column(o): row[o] * rng.uniform(0.95, 1.05) for o in OBJECTIVES[:3]})
        else:
            row[Column.RUNG_CLEAN_ERROR] = clean * 1.5
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        write_table(synthetic_table(args.trials), run / RESULTS_STEM)
        write_settings(run, RunSettings("resnet-cifar", "cifar10", "paper", {}, OBJECTIVES[:3], "tpe", "moasha",
                                        args.trials, 0, "seed-paper", 0.1, "none"))
        write_report(run, run / "warm-up.html")  # imports and plotly's first-use set-up
        times = []
        for _ in range(3):
            started = time.perf_counter()
            out = write_report(run)
            times.append(time.perf_counter() - started)
        print(f"report for {args.trials} trials: median {sorted(times)[1]:.2f} s over 3 runs "
              f"({', '.join(f'{t:.2f}' for t in times)}), {out.stat().st_size / 1e6:.1f} MB HTML (target <= 5 s)")


if __name__ == "__main__":
    main()
