"""The Python API: a run as an object (``ppsearch.open_run``) shows what its report shows, and
``ppsearch.run`` / ``ppsearch.train`` take what the commands take."""
import inspect
import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from run_dirs import tiny_space, trial_row, write_run

import ppsearch
from ppsearch.cli import build_parser, main
from ppsearch.errors import UserError
from ppsearch.rundir import FINAL_STATUSES, RECORDS_STEM, status_counts, write_table

ROWS = [trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0),
        trial_row("a1-seed1", "paper:resnet20", "none", 0.12, 1.1, 1.2, seed=1),
        trial_row("b1", "paper:resnet20-pp", "pp", 0.11, 0.9, 0.9),
        trial_row("c1", "searched", "b1", 0.09, 0.8, 0.85),
        trial_row("c1-seed1", "searched", "b1", 0.095, 0.82, 0.86, seed=1),
        trial_row("c1-seed2", "searched", "b1", 0.085, 0.81, 0.84, seed=2)]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, local_ray):
    """A finished search at the smoke budget, made through ``ppsearch.run`` (two papers' configurations
    and one searched trial, the front confirmed with a second seed), and its report. Seed 1 puts the
    searched trial on the front, so the verdicts have rows (untested ones: one unbiased seed a side)."""
    folder = tmp_path_factory.mktemp("smoke")
    run = ppsearch.run(tiny_space(folder), budget="smoke", trials=1, scheduler="none", max_concurrent=1,
                       confirm_seeds=2, seed=1, out=folder / "run", quiet=True)
    assert main(["report", str(run.path)]) == 0
    return run


def test_a_finished_run_shows_what_its_report_shows(smoke_run):
    reopened = ppsearch.open_run(smoke_run.path)
    assert reopened.settings == smoke_run.settings and reopened.table.equals(smoke_run.table)
    # the report writes its tables with DataFrame.to_csv: the run's tables are the same text
    for name, table in (("front", reopened.front()), ("verdicts", reopened.verdicts()),
                        ("configurations", reopened.configurations())):
        assert table.to_csv(index=False) == (smoke_run.path / f"report-{name}.csv").read_text(), name
    assert "searched" in set(reopened.front()["origin"]) and len(reopened.verdicts())
    plotted = _report_figures((smoke_run.path / "report.html").read_text())
    assert [layout["title"]["text"] for _, layout in plotted] == \
        [reopened.figure(name).layout.title.text for name in reopened.figures()]
    assert reopened.figures()[:2] == ["forest", "front"]
    for name, (data, _) in zip(reopened.figures(), plotted):
        if name != "importance":  # Optuna's importance evaluator draws a random forest each time
            assert json.loads(reopened.figure(name).to_json())["data"] == data, name
    assert reopened.study.study_name == reopened.settings.study_name
    assert set(reopened.pick()) >= {"arch", "placement", "antialias"}


def test_a_run_in_a_notebook_shows_its_dataset_budget_trials_and_front(smoke_run):
    shown = smoke_run._repr_html_()
    assert "fashion-mnist" in shown and "smoke" in shown
    assert status_counts(smoke_run.table, FINAL_STATUSES) in shown
    for config_id in smoke_run.front()["config_id"]:
        assert f"<td>{config_id}</td>" in shown


def test_importing_ppsearch_and_reading_a_run_do_not_import_torch_or_ray(tmp_path):
    run_dir = write_run(tmp_path / "run", ROWS)
    code = ("import sys, ppsearch\n"
            f"run = ppsearch.open_run({str(run_dir)!r})\n"
            "run.front(), run.verdicts(), run.figure('front'), run.pick(), run._repr_html_()\n"
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_written_run_gives_its_picked_configuration_and_comparison(tmp_path):
    first = ppsearch.open_run(write_run(tmp_path / "first", ROWS))
    assert first.pick() == {"arch": "resnet20", "placement": "b1", "antialias": "none"}
    assert first.front()["config_id"].tolist() == ["c1"]
    assert first.verdicts().set_index("paper_config").loc["a1", "seeds (front, paper)"] == "2, 2"
    second = write_run(tmp_path / "second", ROWS, budget="short")
    tables = first.compare(second)
    assert main(["report", str(first.path), str(second), "--out", str(tmp_path / "comparison.html")]) == 0
    for name, table in tables.items():
        assert table.to_csv(index=False) == (tmp_path / f"comparison-{name}.csv").read_text(), name


def test_a_training_run_opens_with_its_summary(tmp_path):
    records = [{**trial_row("seed-0", "seed", "pp", 0.10, 1.0, 1.0), "dataset": "fashion-mnist", "budget": "smoke"},
               {**trial_row("seed-1", "seed", "pp", 0.12, 1.2, 1.1, seed=1), "dataset": "fashion-mnist",
                "budget": "smoke"}]
    write_table(pd.DataFrame(records), tmp_path / RECORDS_STEM)
    trained = ppsearch.open_run(tmp_path)
    assert isinstance(trained, ppsearch.TrainingRun)
    summary = trained.summary().set_index("metric")
    assert summary.loc["clean_error", "mean"] == pytest.approx(0.11) and summary.loc["clean_error", "seeds"] == 2
    shown = trained._repr_html_()
    assert "fashion-mnist" in shown and "smoke" in shown and "2 completed" in shown and "placement pp" in shown


@pytest.mark.parametrize("api, command", [(ppsearch.run, "run"), (ppsearch.train, "train")])
def test_the_api_and_the_command_line_have_the_same_defaults(api, command):
    """Each option of the command is a parameter of its function, with the same default (the
    command calls the function with every option)."""
    defaults = vars(build_parser().parse_args([command]))
    renamed = {"budget_set": "budget_overrides", "constraint": "constraints", "config": "config"}
    for option, default in defaults.items():
        if option in ("run", "command", "mlflow", "mlflow_artifacts"):  # the handler; tracking is an object
            continue
        parameter = inspect.signature(api).parameters[renamed.get(option, option)]
        expected = {"budget_set": None, "confirm_seeds": 1}.get(option, default)
        given = tuple(parameter.default) if isinstance(expected, list) else parameter.default
        assert given == (tuple(expected) if isinstance(expected, list) else expected), option


@pytest.mark.bad_input
def test_a_folder_that_is_no_run_is_one_line_naming_it(tmp_path):
    for folder in (tmp_path / "absent", tmp_path):
        with pytest.raises(UserError) as refused:
            ppsearch.open_run(folder)
        assert str(folder) in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.bad_input
def test_a_run_of_a_newer_format_is_refused_naming_the_folder(tmp_path):
    run_dir = write_run(tmp_path / "run", ROWS)
    settings = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**settings, "surrogate": "gp"}))
    with pytest.raises(UserError, match=f"^{re.escape(str(run_dir))} holds a run of a newer format: its settings "
                                        f"surrogate are unknown to ppsearch {re.escape(ppsearch.__version__)}; "
                                        f"upgrade ppsearch to read it$"):
        ppsearch.open_run(run_dir)


@pytest.mark.bad_input
def test_an_unknown_figure_is_refused_naming_the_figures(tmp_path):
    run = ppsearch.open_run(write_run(tmp_path / "run", ROWS))
    with pytest.raises(UserError, match=f"no figure 'nope'; this run's figures: {', '.join(run.figures())}$"):
        run.figure("nope")
    assert {"forest", "front", "front-mfr", "front-3d", "search", "parallel"} <= set(run.figures())


def _report_figures(page: str) -> list[tuple[list, dict]]:
    """The (data, layout) of every plotly figure of a report page, in its order."""
    decoder = json.JSONDecoder()
    figures = []
    for call in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', page):
        data, end = decoder.raw_decode(page, call.end())
        layout, _ = decoder.raw_decode(page, re.compile(r"\s*,\s*").match(page, end).end())
        figures.append((data, layout))
    return figures
