"""`ppsearch report` on a results table with known content, and its bad input."""


import pandas as pd
import pytest
from browser import is_blank, needs_chromium, render
from run_dirs import tiny_settings, tiny_space, trial_row, write_run

from ppsearch.cli import main
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
