"""What the analysis scripts share: RUN_DIR arguments in, a table as markdown on stdout and as CSV
beside the first run, user mistakes as one line (exit 2)."""
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ppsearch.cli import run_command
from ppsearch.errors import UserError
from ppsearch.rundir import RUN_FILE, Column, completed_trials, is_paper, read_settings
from ppsearch.selection.uncertainty import configuration_id, selected_rows

CONFIGURATION = "configuration"  # the column the analyses group by


def configuration_rows(run_dirs: list[str]) -> pd.DataFrame:
    """The completed trials of the runs that estimate a configuration, each named in a
    ``configuration`` column (a paper configuration or a train run by its origin, any other
    configuration of a search by its id): a search's selected seeds are left out (biased by the
    selection, as in its report)."""
    tables = []
    for run_dir in run_dirs:
        table = completed_trials(run_dir)
        if (Path(run_dir) / RUN_FILE).is_file():  # a search run: searched configurations apart, selected seeds out
            table = table[~selected_rows(table, read_settings(run_dir).objectives)]
            papers = table[Column.ORIGIN].map(is_paper).astype(bool)
            table = table.assign(**{CONFIGURATION: table[Column.ORIGIN].where(papers, configuration_id(table))})
        else:
            table = table.assign(**{CONFIGURATION: table[Column.ORIGIN]})
        tables.append(table)
    return pd.concat(tables)


def table_script(name: str, build: Callable[[list[str]], pd.DataFrame]) -> int:
    def run() -> None:
        if len(sys.argv) < 2:
            raise UserError(f"usage: python analysis/{name}.py RUN_DIR [RUN_DIR ...]")
        emit_table(name, build(sys.argv[1:]), sys.argv[1])

    return run_command(run, name)


def emit_table(name: str, out: pd.DataFrame, first_run_dir: str) -> None:
    """Markdown on stdout, CSV as ``<name>.csv`` in ``first_run_dir``."""
    print(out.to_markdown(index=False, floatfmt=".3f"))
    out.to_csv(Path(first_run_dir) / f"{name}.csv", index=False)
