"""The seed paper's Table 1 layout for a run: E, mCE, rCE and mFR per configuration (mean over the
seeds it was trained with), as markdown on stdout and CSV beside the run.

    python analysis/table1.py RUN_DIR [RUN_DIR ...]     # search runs or `ppsearch train` runs
"""
import sys

import pandas as pd
from script import table_script

from ppsearch.rundir import Column, completed_trials

COLUMNS = {Column.CLEAN_ERROR: "E", Column.MCE: "mCE", Column.RELATIVE_MCE: "rCE", Column.MFR: "mFR"}


def table1(run_dirs: list[str]) -> pd.DataFrame:
    table = pd.concat([completed_trials(d) for d in run_dirs])
    grouped = table.groupby(Column.ORIGIN, sort=False)
    result = grouped[list(COLUMNS)].mean().rename(columns=COLUMNS)
    result["E"] *= 100  # the paper gives E in percent
    result.insert(0, "seeds", grouped.size())
    return result.reset_index(names="configuration")


if __name__ == "__main__":
    sys.exit(table_script("table1", table1))
