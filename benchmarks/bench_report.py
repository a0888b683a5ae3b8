"""Time of `ppsearch report` on a synthetic 1,000-trial results table (target <= 5 s on a 2-core CPU).

The table has the columns a resnet-cifar run writes (configuration, status, objectives, CE per
corruption, FP per perturbation, finished_at), random but plausible values, 14 paper rows, 10%
pruned and 2% failed trials; no Optuna journal, so the importance section is left out (Optuna's
evaluator on 1,000 trials is its own cost, reported separately below when --importance is given).

    python benchmarks/bench_report.py [--trials 1000]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ppsearch.corruptions import BENCHMARK_CORRUPTIONS
from ppsearch.perturbations import TEST_PERTURBATIONS
from ppsearch.report import write_report
from ppsearch.space import load_space


def synthetic_table(trials: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    space = load_space("resnet-cifar")
    papers = list(space.paper_configs)
    rows = []
    for i in range(trials):
        config = {"placement": rng.choice(["none", "pp", "b1", "b2", "all"]), "variant": rng.choice(["upsample", "minmax_avg"]),
                  "scale": float(rng.choice([1.5, 2.0, 3.0])), "alpha": float(rng.uniform(0.25, 2)),
                  "antialias": rng.choice(["none", "rect2", "tri3", "bin5"]), "augmentation": "standard",
                  "arch": "resnet20", "recipe": "fast", "pull_kernel_size": None, "trainable_alpha": False,
                  "avg_kernel_size": 0}
        status = "completed" if rng.random() > 0.12 else rng.choice(["pruned", "failed"], p=[0.85, 0.15])
        clean = rng.uniform(0.07, 0.2)
        row = {"trial_id": f"{i:08x}", "origin": f"paper:{papers[i]}" if i < len(papers) else "searched",
               "status": status, **config, "budget_reached": 200 if status == "completed" else 3,
               "finished_at": f"2026-11-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}"}
        if status == "completed":
            row.update(clean_error=clean, mce=rng.uniform(0.7, 1.2) - clean, mfr=rng.uniform(0.6, 1.2),
                       relative_mce=rng.uniform(1, 2),
                       **{f"ce/{c}": rng.uniform(0.3, 1.5) for c in BENCHMARK_CORRUPTIONS},
                       **{f"fp/{p}": rng.uniform(0, 0.1) for p in TEST_PERTURBATIONS})
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        synthetic_table(args.trials).to_parquet(run / "results.parquet")
        (run / "run.json").write_text(json.dumps({"objectives": ["clean_error", "mce", "mfr"], "dataset": "cifar10",
                                                  "budget": "paper", "space": "resnet-cifar", "study_name": "none"}))
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
