"""Run directories with known content, written through ppsearch's own run-directory contracts."""
import dataclasses
from pathlib import Path

import pandas as pd

from ppsearch.rundir import RESULTS_STEM, RunSettings, write_settings, write_table

SETTINGS = RunSettings(space="resnet-cifar", dataset="fashion-mnist", budget="demo", budget_overrides={},
                       objectives=("clean_error", "mce", "mfr"), sampler="tpe", scheduler="moasha", trials=0, seed=0,
                       protocol="seed-paper", validation_fraction=0.1, study_name="absent")


def write_run(run_dir: Path, rows: list[dict] | pd.DataFrame, **settings) -> Path:
    """A search run directory holding ``rows`` as its results table (``settings`` change the run's)."""
    write_table(pd.DataFrame(rows), run_dir / RESULTS_STEM)
    write_settings(run_dir, dataclasses.replace(SETTINGS, **settings))
    return run_dir
