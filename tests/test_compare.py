"""Several runs compared: `ppsearch report`, `pick` and the dashboard given more than one run."""
import pandas as pd
import pytest
import yaml
from browser import dom, is_blank, needs_chromium, render
from run_dirs import trial_row, write_run

from ppsearch.cli import main
from ppsearch.reporting.compare import design_ranks, load_runs, mixing_note, write_comparison
from ppsearch.reporting.dashboard import comparison_views, create_app


def _runs(tmp_path, second_dataset="fashion-mnist"):
    """Two runs of resnet20 (budgets demo and short): pp is on both validation fronts, b1 only on the
    first; the searched pp trial of each run carries alpha 0.5."""
    first = [trial_row("a1", "paper:resnet20", "none", 0.10, 1.00, 1.00),
             trial_row("b1", "paper:resnet20-b1", "b1", 0.12, 0.70, 0.80),
             trial_row("c1", "searched", "pp", 0.09, 0.95, 0.90), trial_row("c1-seed1", "searched", "pp", 0.09, 0.95, 0.90, seed=1)]
    second = [trial_row("a1", "paper:resnet20", "none", 0.08, 0.90, 0.90),
              trial_row("b1", "paper:resnet20-b1", "b1", 0.09, 0.95, 0.95),  # dominated by c1 here
              trial_row("c1", "searched", "pp", 0.07, 0.85, 0.85), trial_row("c1-seed1", "searched", "pp", 0.07, 0.85, 0.85, seed=1)]
    for rows in (first, second):
        for row in rows:
            row["alpha"] = 0.5 if row["placement"] == "pp" else 1.0
    return (write_run(tmp_path / "demo-run", first),
            write_run(tmp_path / "short-run", second, budget="short", dataset=second_dataset))


def test_designs_are_ranked_on_each_runs_validation_values(tmp_path):
    runs = load_runs(_runs(tmp_path))
    ranks = design_ranks(runs, ("clean_error", "mce", "mfr")).set_index("design")
    pp = "pp: variant=upsample, scale=2.0, alpha=0.5, trainable_alpha=False; augmentation standard"
    b1 = "b1: variant=upsample, scale=2.0, alpha=1.0, trainable_alpha=False; augmentation standard"
    assert ranks.loc[pp].tolist() == [1, 1, 2]  # rank in each run, runs on the front
    assert ranks.loc[b1].tolist() == [1, 3, 1]  # short-run: the plain model and pp both dominate it
    assert ranks.loc["none; augmentation standard"].tolist() == [2, 2, 0]
    assert list(ranks.index) == [pp, b1, "none; augmentation standard"]  # most fronts first


def test_pick_across_runs_prints_the_design_on_every_front(tmp_path, capsys):
    assert main(["pick", *map(str, _runs(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "on the validation front of every run (Pareto rank on validation values, 1 = front: demo-run 1, " \
           "short-run 1)" in out
    assert yaml.safe_load(out)["placement"] == "pp" and yaml.safe_load(out)["alpha"] == 0.5


def test_pick_across_runs_says_when_no_design_is_on_every_front(tmp_path, capsys):
    first, second = _runs(tmp_path)
    table = pd.read_parquet(second / "results.parquet")
    table = table[table["placement"] != "pp"]  # now only b1 and the plain model are in both
    write_run(second, table, budget="short")
    assert main(["pick", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    # none: ranks 2 (pp dominates it) and 1; b1: 1 and 2 (none dominates it); a tie, settled by the name
    assert "no design is on every run's validation front; the closest (Pareto rank on validation values, " \
           "1 = front: demo-run 1, short-run 2)" in out
    assert yaml.safe_load(out)["placement"] == "b1"


def test_comparison_report_shares_one_reference_point_and_flags_mixed_datasets(tmp_path, capsys):
    first, second = _runs(tmp_path, second_dataset="cifar10")
    assert main(["report", str(first), str(second), "--out", str(tmp_path / "cmp.html")]) == 0
    assert "comparison of 2 runs written to" in capsys.readouterr().out
    page = (tmp_path / "cmp.html").read_text()
    warning = "These runs differ in dataset (demo-run: fashion-mnist, short-run: cifar10)"
    assert page.count(warning) >= 5  # above both plots (their titles) and every table
    volumes = pd.read_csv(tmp_path / "cmp-hypervolume.csv")
    assert volumes["run"].tolist() == ["demo-run", "short-run"] and (volumes["hypervolume"] > 0).all()
    # reference: 1.1 x the worst paper value over both runs = 1.1 x (0.12, 1.0, 1.0)
    assert "[0.132, 1.1, 1.1]" in page
    same = pd.read_csv(tmp_path / "cmp-same_configuration.csv")
    assert sorted(same["run"].unique()) == ["demo-run", "short-run"] and len(same) == 6  # 3 designs x 2 runs


def test_runs_without_a_shared_objective_cannot_be_compared(tmp_path, capsys):
    first = write_run(tmp_path / "a", [trial_row("a1", "paper:resnet20", "none", 0.1, 1.0, 1.0)], objectives=("mce",))
    second = write_run(tmp_path / "b", [trial_row("a1", "paper:resnet20", "none", 0.1, 1.0, 1.0)], objectives=("mfr",))
    for command in ("report", "pick"):
        assert main([command, str(first), str(second)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "ppsearch: error: the runs have no objective in common (a: mce; b: mfr): there is nothing to compare"
    assert not (tmp_path / "comparison.html").exists()


@pytest.mark.parametrize("args, message", [
    (["--objective-weights", "1,1,1"], "--objective-weights picks within one run"),
    (["--max-latency-ms", "2"], "--max-latency-ms picks within one run"),
])
@pytest.mark.bad_input
def test_pick_across_runs_bad_input(tmp_path, capsys, args, message):
    assert main(["pick", *map(str, _runs(tmp_path)), *args]) == 2
    assert message in capsys.readouterr().err


def test_the_dashboard_compares_several_runs(tmp_path):
    runs = list(_runs(tmp_path))
    app = create_app(runs)
    assert app.title == "ppsearch: demo-run, short-run" and "filter-placement" not in str(app.layout)
    status, figures, ranks = comparison_views(runs)
    assert status.startswith("demo-run: 4 trials") and len(figures) == 2
    assert {trace.legendgroup for trace in figures[0].data} == {"demo-run", "short-run"}
    assert "rank in short-run" in ranks


@needs_chromium
def test_the_comparison_renders_in_a_browser_with_both_fronts(tmp_path):
    page = write_comparison(_runs(tmp_path), tmp_path / "cmp.html")
    assert render(page.resolve().as_uri(), tmp_path / "cmp.png") == []
    assert not is_blank(tmp_path / "cmp.png")
    shown = dom(page.resolve().as_uri())
    assert "demo-run: front" in shown and "short-run: front" in shown and "paper:resnet20-b1 (short-run)" in shown


def test_runs_at_different_image_sizes_are_flagged(tmp_path):
    rows = [trial_row("a1", "paper:resnet20", "none", 0.10, 1.00, 1.00)]
    runs = load_runs([write_run(tmp_path / "native", rows), write_run(tmp_path / "at64", rows, image_size=64)])
    assert mixing_note(runs).startswith("These runs differ in image_size (native: the dataset's own, at64: 64)")
    assert mixing_note(runs[:1]) == ""
