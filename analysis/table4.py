"""The seed paper's per-corruption table for a run: CE of every benchmark corruption (mean over
severities and the seeds that estimate a configuration: a search's selected seeds left out) per
configuration, plus mCE, as markdown on stdout and CSV beside the run.

    python analysis/table4.py RUN_DIR [RUN_DIR ...]
"""
import sys

import pandas as pd
from script import CONFIGURATION, configuration_rows, table_script

from ppsearch.robustness.corruptions import BENCHMARK_CORRUPTIONS
from ppsearch.rundir import CE_PREFIX, Column


def table4(run_dirs: list[str]) -> pd.DataFrame:
    columns = [f"{CE_PREFIX}{c}" for c in BENCHMARK_CORRUPTIONS] + [Column.MCE]
    result = configuration_rows(run_dirs).groupby(CONFIGURATION, sort=False)[columns].mean()
    result.columns = [c.removeprefix(CE_PREFIX) for c in columns]
    return result.T.reset_index(names="corruption")


if __name__ == "__main__":
    sys.exit(table_script("table4", table4))
