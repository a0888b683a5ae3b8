"""What the analysis scripts share: RUN_DIR arguments in, a table as markdown on stdout and as CSV
beside the first run, user mistakes as one line (exit 2)."""
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ppsearch.cli import run_command
from ppsearch.errors import UserError


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
