"""The tests' shared helpers: run directories with known content, written through ppsearch's own
run-directory contracts; a results table's rows; a tiny search space and its run settings."""
import dataclasses
import textwrap
from pathlib import Path

import pandas as pd

from ppsearch.robustness.names import BENCHMARK_CORRUPTIONS
from ppsearch.rundir import RESULTS_STEM, RunSettings, write_settings, write_table
from ppsearch.search.space import load_space

SETTINGS = RunSettings(space="resnet-cifar", dataset="fashion-mnist", budget="demo", budget_overrides={},
                       objectives=("clean_error", "mce", "mfr"), sampler="tpe", scheduler="moasha", trials=0, seed=0,
                       protocol="seed-paper", validation_fraction=0.1, study_name="absent")


def write_run(run_dir: Path, rows: list[dict] | pd.DataFrame, **settings) -> Path:
    """A search run directory holding ``rows`` as its results table (``settings`` change the run's)."""
    write_table(pd.DataFrame(rows), run_dir / RESULTS_STEM)
    write_settings(run_dir, dataclasses.replace(SETTINGS, **settings))
    return run_dir


def trial_row(trial_id, origin, placement, clean, mce, mfr, seed=0, status="completed"):
    """A trial's row; a seed > 0 is a confirmation of the trial named before its '-'."""
    return {"trial_id": trial_id, "config_id": trial_id.split("-")[0], "origin": origin, "status": status,
            "arch": "resnet20", "placement": placement, "antialias": "none", "seed": seed,
            "clean_error": clean, "mce": mce, "mfr": mfr, "relative_mce": mce * 1.5,
            "val_clean_error": clean, "val_mce": mce, "val_mfr": mfr, "budget_reached": 4 if status == "completed" else 1,
            "rung_clean_error": clean if status == "pruned" else None,
            "finished_at": f"2026-11-23T00:00:{len(trial_id):02d}{trial_id[-1]}",
            **{f"ce/{c}": mce for c in BENCHMARK_CORRUPTIONS}, "fp/rotate": mfr / 10}


TINY_SPACE = """
name: tiny
dataset: fashion-mnist
defaults: {arch: resnet8, augmentation: none}
dimensions:
  placement: {choices: [none, pp]}
  alpha: {low: 0.5, high: 1.0e38, log: true, when: {placement: [pp]}}
  antialias: {choices: [none, rect2]}
objectives: [clean_error, mce]
budgets:
  smoke: {train_images: 128, eval_images: 100, c_images: 5, p_images: 2}
paper_configs:
  plain: {placement: none}
  pp: {placement: pp}
"""


def tiny_space(tmp_path, extra=""):
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(TINY_SPACE) + extra)
    return path


def tiny_settings(space_path, trials, scheduler="none", sampler="tpe"):
    space = load_space(space_path)
    return RunSettings(str(space_path), "fashion-mnist", "smoke", space.budget("smoke"), space.objectives,
                       sampler, scheduler, trials, 0, "seed-paper", 0.1)
