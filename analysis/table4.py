"""The seed paper's per-corruption table for a run: CE of every benchmark corruption (mean over
severities and seeds) per configuration, plus mCE, as markdown on stdout and CSV beside the run.

    python analysis/table4.py RUN_DIR [RUN_DIR ...]
"""
import sys

import pandas as pd
from script import table_script

from ppsearch.robustness.corruptions import BENCHMARK_CORRUPTIONS
from ppsearch.rundir import CE_PREFIX, Column, completed_trials


def table4(run_dirs: list[str]) -> pd.DataFrame:
    table = pd.concat([completed_trials(d) for d in run_dirs])
    columns = [f"{CE_PREFIX}{c}" for c in BENCHMARK_CORRUPTIONS] + [Column.MCE]
    result = table.groupby(Column.ORIGIN, sort=False)[columns].mean()
    result.columns = [c.removeprefix(CE_PREFIX) for c in columns]
    return result.T.reset_index(names="corruption")


if __name__ == "__main__":
    sys.exit(table_script("table4", table4))
