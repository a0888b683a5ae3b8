"""The analyses in analysis/ run on real run directories of `ppsearch train`."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ppsearch.cli import main

ANALYSIS = Path(__file__).parents[1] / "analysis"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, config in (("plain", ["arch=resnet8"]), ("pp", ["arch=resnet8", "placement=pp"])):
        assert main(["train", "--config", *config, "--dataset", "fashion-mnist", "--budget", "smoke",
                     "--budget-set", "epochs=1", "--seeds", "2", "--out", str(root / name), "--quiet"]) == 0
    return [root / "plain", root / "pp"]


def _analysis(name, runs):
    result = subprocess.run([sys.executable, str(ANALYSIS / f"{name}.py"), *map(str, runs)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_table1(runs):
    out = _analysis("table1", runs)
    table = pd.read_csv(runs[0] / "table1.csv").set_index("configuration")
    assert table["seeds"].tolist() == [2, 2] and list(table.columns) == ["seeds", "E", "mCE", "rCE", "mFR"]
    records = pd.read_parquet(runs[1] / "records.parquet")
    assert table.loc["pp", "E"] == pytest.approx(100 * records["clean_error"].mean())
    assert "| configuration" in out


def test_table4(runs):
    _analysis("table4", runs)
    table = pd.read_csv(runs[0] / "table4.csv").set_index("corruption")
    assert len(table) == 16 and list(table.columns) == ["plain", "pp"]  # 15 corruptions + mCE
    assert table.loc["mce", "pp"] == pytest.approx(table.drop("mce")["pp"].mean())


def test_figure4(runs):
    _analysis("figure4", runs)
    summary = pd.read_csv(runs[0] / "figure4.csv").set_index("configuration")
    assert summary["kind"].to_dict() == {"plain": "conv", "pp": "push_pull"}
    assert (runs[0] / "figure4.html").stat().st_size > 1_000_000  # plotly.js embedded: opens offline


@pytest.mark.bad_input
def test_an_empty_directory_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, str(ANALYSIS / "table1.py"), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "holds neither results.parquet" in result.stderr


def test_table1_of_a_search_keeps_searched_configurations_apart_without_their_selected_seeds(tmp_path):
    from run_dirs import trial_row, write_run

    rows = [trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0), trial_row("a1-seed1", "paper:resnet20", "none", 0.12, 1.0, 1.0),
            trial_row("c1", "searched", "b1", 0.01, 0.5, 0.5),  # on the validation front: its search seed was selected
            trial_row("c1-seed1", "searched", "b1", 0.09, 0.8, 0.8), trial_row("c1-seed2", "searched", "b1", 0.11, 0.8, 0.8),
            trial_row("d1", "searched", "b2", 0.30, 2.0, 2.0)]  # dominated on validation: not selected, its seed counts
    run = write_run(tmp_path / "run", rows)
    _analysis("table1", [run])
    table = pd.read_csv(run / "table1.csv").set_index("configuration")
    assert table["seeds"].to_dict() == {"paper:resnet20": 2, "c1": 2, "d1": 1}
    assert table.loc["c1", "E"] == pytest.approx(10.0) and table.loc["paper:resnet20", "E"] == pytest.approx(11.0)
