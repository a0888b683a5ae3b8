"""The seed paper's per-corruption table for a run: CE of every benchmark corruption (mean over
severities and seeds) per configuration, plus mCE, as markdown on stdout and CSV beside the run.

    python analysis/table4.py RUN_DIR [RUN_DIR ...]
"""
import sys
from pathlib import Path

import pandas as pd

from ppsearch.corruptions import BENCHMARK_CORRUPTIONS
from ppsearch.cli import run_command
from ppsearch.results import read_run_table


def table4(run_dirs: list[str]) -> pd.DataFrame:
    table = pd.concat([read_run_table(d) for d in run_dirs])
    columns = [f"ce/{c}" for c in BENCHMARK_CORRUPTIONS] + ["mce"]
    result = table.groupby("origin", sort=False)[columns].mean()
    result.columns = [c.removeprefix("ce/") for c in columns]
    return result.T.reset_index(names="corruption")


def run() -> None:
    if len(sys.argv) < 2:
        raise ValueError("usage: python analysis/table4.py RUN_DIR [RUN_DIR ...]")
    out = table4(sys.argv[1:])
    print(out.to_markdown(index=False, floatfmt=".3f"))
    out.to_csv(Path(sys.argv[1]) / "table4.csv", index=False)


if __name__ == "__main__":
    sys.exit(run_command(run, "table4"))
