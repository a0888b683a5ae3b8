"""The seed paper's Table 1 layout for a run: E, mCE, rCE and mFR per configuration (mean over the
seeds it was trained with), as markdown on stdout and CSV beside the run.

    python analysis/table1.py RUN_DIR [RUN_DIR ...]     # search runs or `ppsearch train` runs
"""
import sys
from pathlib import Path

import pandas as pd

from ppsearch.cli import run_command
from ppsearch.results import read_run_table

COLUMNS = {"clean_error": "E", "mce": "mCE", "relative_mce": "rCE", "mfr": "mFR"}


def table1(run_dirs: list[str]) -> pd.DataFrame:
    table = pd.concat([read_run_table(d) for d in run_dirs])
    grouped = table.groupby("origin", sort=False)
    result = grouped[list(COLUMNS)].mean().rename(columns=COLUMNS)
    result["E"] *= 100  # the paper gives E in percent
    result.insert(0, "seeds", grouped.size())
    return result.reset_index(names="configuration")


def run() -> None:
    if len(sys.argv) < 2:
        raise ValueError("usage: python analysis/table1.py RUN_DIR [RUN_DIR ...]")
    out = table1(sys.argv[1:])
    print(out.to_markdown(index=False, floatfmt=".3f"))
    out.to_csv(Path(sys.argv[1]) / "table1.csv", index=False)


if __name__ == "__main__":
    sys.exit(run_command(run, "table1"))
