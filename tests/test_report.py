"""`ppsearch report` on a results table with known content, and its bad input."""

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from browser import is_blank, needs_chromium, render
from run_dirs import tiny_settings, tiny_space, trial_row, write_run

from ppsearch.cli import main
from ppsearch.reporting.dashboard import views
from ppsearch.reporting.report import PAPER_REPORTED, write_report


def test_report_is_one_offline_html_file_with_its_tables(tmp_path, capsys):
    run = write_run(tmp_path / "run", [trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0),
                          trial_row("a1-seed1", "paper:resnet20", "none", 0.12, 1.1, 1.2, seed=1),
                          trial_row("b1", "paper:resnet20-pp", "pp", 0.11, 0.9, 0.9),
                          trial_row("c1", "searched", "b1", 0.09, 0.8, 0.85),  # dominates both papers
                          trial_row("a1-seed2", "paper:resnet20", "none", 0.11, 1.05, 1.1, seed=2),
                          trial_row("c1-seed1", "searched", "b1", 0.095, 0.82, 0.86, seed=1),
                          trial_row("c1-seed2", "searched", "b1", 0.085, 0.81, 0.84, seed=2),
                          trial_row("d1", "searched", "b2", 0.01, 0.01, 0.01, status="pruned")])
    assert main(["report", str(run)]) == 0
    assert "report written to" in capsys.readouterr().out
    page = (run / "report.html").read_text()
    assert page.count("* plotly.js v") == 1  # plotly.js embedded, once
    assert "https://cdn" not in page.split("</head>")[0]  # nothing fetched from the network
    for text in ("clean error vs mce", "clean error vs mfr", "mfr: test estimates", "each configuration's test estimate",
                 "search progress: hypervolume of the search trials' validation values",
                 "what the search tried", "CE per corruption on the front", "paper reproduction", "resnet20-pp"):
        assert text in page, text
    # it leads with the answer: the verdicts come before every figure
    assert page.index("Verdicts: the front against the papers") < page.index("js-plotly-plot") if "js-plotly-plot" \
        in page else page.index("Verdicts") < page.index("<script")
    assert "selected on 0.1 of the training split held out as validation images" in page
    assert "not meaningful" in page  # a demo budget's differences
    assert "Holm-corrected over every comparison of the report, alpha = 0.05" in page
    front = pd.read_csv(run / "report-front.csv")
    assert front["config_id"].tolist() == ["c1"]  # the pruned trial never enters the front
    # c1's estimate: its confirmation seeds 1 and 2 (0.095, 0.085); its selected seed 0.09 shown apart
    assert front["seeds"].tolist() == [2] and front["clean_error"].iloc[0] == pytest.approx(0.09)
    assert front["clean_error selected seed"].iloc[0] == pytest.approx(0.09)
    verdicts = pd.read_csv(run / "report-verdicts.csv").set_index("paper_config")
    # a1 (3 seeds) against c1 (2 unbiased seeds): clean error 0.09 vs 0.11 is not shown at 2 seeds
    assert verdicts.loc["a1", "verdict"] == "not shown" and verdicts.loc["a1", "seeds (front, paper)"] == "2, 3"
    assert verdicts.loc["b1", "verdict"] == "not shown: fewer than 2 seeds a side"
    assert "0 of 2 comparisons decided (alpha = 0.05, Holm over the 2)" in page
    reproduction = pd.read_csv(run / "report-paper_reproduction.csv").set_index("configuration")
    assert reproduction.loc["resnet20", "seeds"] == 3
    assert reproduction.loc["resnet20", "clean_error (ours)"] == pytest.approx(0.11)
    assert reproduction.loc["resnet20", "clean_error (paper)"] == PAPER_REPORTED["resnet20"]["clean_error"]
    configs = pd.read_csv(run / "report-configurations.csv").set_index("config_id")
    assert configs.loc["a1", "seeds"] == 3 and configs.loc["a1", "clean_error"] == pytest.approx(0.11)
    assert "## front" in (run / "report.md").read_text()


@pytest.mark.parametrize("setup, message", [
    (lambda run: None, "has no results table"),
    (lambda run: write_run(run, [{"trial": 1}]), "written by an older ppsearch"),
    (lambda run: write_run(run, [trial_row("a", "searched", "pp", 0.1, 1, 1, status="failed")]), "no completed trial yet"),
])
@pytest.mark.bad_input
def test_report_bad_input(tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    setup(run)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_report_of_a_real_run_includes_importance(tmp_path, local_ray):
    from ppsearch.search.engine import Resources, run_search

    run = tmp_path / "run"
    run_search(run, tiny_settings(tiny_space(tmp_path), trials=3), Resources(), quiet=True)
    page = write_report(run).read_text()
    assert "dimension importance" in page and "paper:plain" in page


@needs_chromium
def test_the_report_renders_in_a_browser_without_console_errors(tmp_path):
    run = write_run(tmp_path / "run", [trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0),
                          trial_row("b1", "paper:resnet20-pp", "pp", 0.11, 0.9, 0.9),
                          trial_row("c1", "searched", "b1", 0.09, 0.8, 0.85)])
    page = write_report(run)
    console = render(page.resolve().as_uri(), tmp_path / "report.png")
    assert console == []
    assert not is_blank(tmp_path / "report.png")


def test_the_report_names_the_protocol_and_marks_procedural_frost(tmp_path):
    rows = [{**trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0), "protocol": "hendrycks",
             "frost": "procedural (ppsearch)"},
            {**trial_row("b1", "searched", "pp", 0.09, 0.9, 0.9), "protocol": "hendrycks", "frost": "procedural (ppsearch)"}]
    run = write_run(tmp_path / "run", rows, protocol="hendrycks")
    page = write_report(run).read_text()
    assert "protocol <b>hendrycks</b>" in page and "<b>Protocol:</b> hendrycks (not the paper's" in page
    assert "procedural frost, not the benchmark" in page
    markdown = (run / "report.md").read_text()
    assert "Evaluation protocol: hendrycks." in markdown and "ce/frost and every mCE here include it" in markdown


def test_the_report_names_the_image_size_of_an_imagenet_run(tmp_path):
    rows = [trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0), trial_row("b1", "searched", "pp", 0.09, 0.9, 0.9)]
    page = write_report(write_run(tmp_path / "run", rows, dataset="imagenet", image_size=64)).read_text()
    assert "dataset <b>imagenet at 64x64</b>" in page


ROWS = [trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0), trial_row("c1", "searched", "b1", 0.09, 0.8, 0.85)]
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture
def signal_handlers():
    """An interrupted command keeps the stopping signals from pytest (so that its cleanup at exit
    finishes): put pytest's handlers back."""
    saved = {number: signal.getsignal(number) for number in STOPPING_SIGNALS}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def _written(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*"))}


@pytest.mark.parametrize("several", [False, True], ids=["report", "comparison"])
@pytest.mark.parametrize("previous", [False, True], ids=["first", "again"])
@pytest.mark.bad_input
def test_an_interrupted_report_leaves_the_previous_set_whole(tmp_path, monkeypatch, capsys, signal_handlers, several,
                                                             previous):
    runs = [write_run(tmp_path / name, ROWS) for name in (("a", "b") if several else ("a",))]
    out = tmp_path / "out"
    command = ["report", *map(str, runs), "--out", str(out / "report.html")]
    if previous:
        assert main(command) == 0
        assert len(_written(out)) == (4 if several else 6)
    before = _written(out) if out.exists() else {}
    write_run(runs[0], ROWS + [trial_row("e1", "searched", "pp", 0.05, 0.5, 0.5)])  # the new set would differ
    write_text, started = Path.write_text, []

    def interrupted_write_text(path, text, *args, **kwargs):
        if path.name.endswith(".partial"):
            started.append(path.name)
            if len(started) == 2:  # Ctrl-C halfway through the second output
                write_text(path, text[:len(text) // 2], *args, **kwargs)
                raise KeyboardInterrupt
        return write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", interrupted_write_text)
    capsys.readouterr()
    assert main(command) == 130
    monkeypatch.undo()
    assert len(started) == 2
    assert (_written(out) if out.exists() else {}) == before  # the previous set, or none: no partial one, no .partial
    printed = capsys.readouterr()
    assert "written to" not in printed.out and "ppsearch: interrupted (SIGINT)" in printed.err


@pytest.mark.bad_input
def test_a_signal_while_the_report_is_moved_in_waits_for_the_whole_set(tmp_path, monkeypatch, capsys,
                                                                          signal_handlers):
    run = write_run(tmp_path / "run", ROWS)
    replace, moved = os.replace, []

    def replace_under_sigterm(source, target):
        if not moved:  # SIGTERM (a batch scheduler's stop) between the set's renames
            os.kill(os.getpid(), signal.SIGTERM)
        moved.append(Path(target).name)
        replace(source, target)

    monkeypatch.setattr(os, "replace", replace_under_sigterm)
    assert main(["report", str(run)]) == 143
    monkeypatch.undo()
    reports = {"report.html", "report.md", *(f"report-{name}.csv" for name in
                                             ("verdicts", "front", "paper_reproduction", "configurations"))}
    assert set(moved) == reports and {p.name for p in run.glob("report*")} == reports
    printed = capsys.readouterr()
    assert "written to" not in printed.out and "ppsearch: interrupted (SIGTERM)" in printed.err


@pytest.mark.bad_input
def test_report_pick_and_the_dashboard_refuse_a_table_without_validation_values_in_one_line(tmp_path, capsys):
    run = write_run(tmp_path / "run", pd.DataFrame(ROWS).drop(columns=["val_mce", "val_mfr"]))
    other = write_run(tmp_path / "other", ROWS)
    line = (f"ppsearch: error: {run / 'results.parquet'} lacks column(s) val_mce, val_mfr: fronts are selected on "
            f"validation values, so there is nothing to select from; rerun the search command on the directory to "
            f"rebuild the table from the trial records\n")
    for command in (["report", str(run)], ["pick", str(run)], ["report", str(other), str(run)],
                    ["pick", str(other), str(run)]):
        assert main(command) == 2
        assert capsys.readouterr().err == line, command
    assert not list(tmp_path.glob("*/report*")) and not list(tmp_path.glob("comparison*"))
    assert views(run, {}).status.endswith(line.removeprefix("ppsearch: error: ").strip())
