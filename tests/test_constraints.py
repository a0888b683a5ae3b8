"""Cost as an objective and as a constraint: how constraints are written and refused, what a
design's excess is, what Optuna is told, and a constrained search end to end (real Ray, real
journal): infeasible designs measured but never trained, never on a front, never picked."""
import pandas as pd
import pytest
from run_dirs import tiny_settings, tiny_space

from ppsearch.constraints import parse_constraint, parse_constraints
from ppsearch.rundir import COST_METRICS, Column, RunSettings, open_study, write_settings
from ppsearch.search.engine import Resources, run_search
from ppsearch.search.space import load_space
from ppsearch.search.strategies import make_sampler
from ppsearch.search.study_searcher import StudySearcher, enqueue_origins


def test_a_constraint_is_a_cost_metric_bounded_absolutely_or_as_a_ratio_to_the_plain_model():
    latency, flops = parse_constraint("latency_ms<=4"), parse_constraint(" flops <= 1.25x ")
    assert (latency.metric, latency.bound, latency.relative, latency.text) == ("latency_ms", 4.0, False, "latency_ms<=4")
    assert (flops.metric, flops.bound, flops.relative, flops.text) == ("flops", 1.25, True, "flops<=1.25x")
    cost, plain = {"latency_ms": 5.0, "flops": 2e6}, {"latency_ms": 1.0, "flops": 1e6}
    assert latency.excess(cost, plain) == pytest.approx(0.25)  # 5 ms is 25% over 4 ms
    assert flops.excess(cost, plain) == pytest.approx(2 / 1.25 - 1)
    assert flops.excess({"flops": 1.2e6}, plain) < 0  # met
    assert parse_constraint("params<=3e5").text == "params<=300000"
    assert set(COST_METRICS) == {"params", "flops", "latency_ms"}


@pytest.mark.bad_input
@pytest.mark.parametrize("text, message", [
    ("latency<=", "unknown metric 'latency'"),
    ("flops<=-1", "the bound must be a positive number, got -1"),
    ("flops<=0x", "the bound must be a positive number"),
    ("foo<=3", "unknown metric 'foo'; constraints bound what a design costs: params, flops, latency_ms"),
    ("latency_ms<=", "the bound '' is not a number"),
    ("latency_ms<4", "write METRIC<=BOUND or METRIC<=RATIOx"),
    ("clean_error<=0.1", "unknown metric 'clean_error'"),
])
def test_a_constraint_that_does_not_parse_is_named(text, message):
    with pytest.raises(ValueError, match="^constraint") as error:
        parse_constraint(text)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.bad_input
def test_the_same_constraint_twice_is_refused():
    with pytest.raises(ValueError, match="--constraint flops<=1.5x is given twice"):
        parse_constraints(["flops<=1.5x", "flops <= 1.5x"])


@pytest.mark.bad_input
@pytest.mark.parametrize("args, message", [
    (["--constraint", "foo<=3"], "argument --constraint: constraint 'foo<=3': unknown metric 'foo'"),
    (["--constraint", "flops<=1.5x", "--sampler", "random"], "sampler 'random' does not use constraints"),
    (["--objectives", "latency_ms,flops"], "are all costs; a search needs an error objective"),
    (["--objectives", "clean_error,watts"], "unknown objective 'watts'"),
    (["--latency-batch", "0"], "argument --latency-batch: must be an integer >= 1, got '0'"),
    (["--latency-device", "cuda"], "--latency-device cuda: the trials have no GPU (--gpus-per-trial 0)"),
    (["--latency-device", "tpu"], "unknown latency device 'tpu'; allowed: cpu, cuda"),
    (["--latency-backend", "tensorrt"], "unknown backend 'tensorrt'; allowed: torch, onnxruntime"),
])
def test_run_refuses_bad_cost_settings_in_one_line_before_anything_is_written(tmp_path, capsys, args, message):
    from ppsearch.cli import main

    space = tiny_space(tmp_path)
    assert main(["run", "--space", str(space), "--budget", "smoke", "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.bad_input
def test_a_ratio_constraint_needs_the_plain_paper_configuration_to_divide_by(tmp_path, capsys):
    from ppsearch.cli import main

    space = tmp_path / "no-plain.yaml"
    space.write_text(tiny_space(tmp_path).read_text().replace("  plain: {placement: none}\n", ""))
    assert main(["run", "--space", str(space), "--budget", "smoke", "--out", str(tmp_path / "run"),
                 "--constraint", "flops<=1.1x"]) == 2
    err = capsys.readouterr().err
    assert "--constraint flops<=1.1x: a ratio to the plain model needs a plain paper configuration" in err
    assert not (tmp_path / "run").exists()


def test_optuna_is_told_each_trials_constraints_and_an_infeasible_one_as_pruned(tmp_path):
    space_path = tiny_space(tmp_path)
    settings = RunSettings(**{**tiny_settings(space_path, trials=2).__dict__, "study_name": "constrained",
                              "constraints": ("flops<=1.01x",)})
    write_settings(tmp_path, settings)
    space = load_space(space_path)
    study = open_study(tmp_path, make_sampler("tpe", 0))
    enqueue_origins(study, space)
    searcher = StudySearcher(study, space, settings.objectives, trials=1, seed=0, resumable=(),
                             on_ended=lambda *ended: None)
    for trial_id in "abc":
        searcher.suggest(trial_id)
    column = "constraint/flops<=1.01x"
    searcher.on_trial_complete("a", {"status": "completed", "clean_error": 0.2, "mce": 0.9, column: -0.01})
    searcher.on_trial_complete("b", {"status": "completed", "clean_error": 0.1, "mce": 0.8, column: 0.04})
    searcher.on_trial_complete("c", {"status": "infeasible", column: 0.3})
    study = open_study(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert [t.constraints for t in study.trials] == [{"flops<=1.01x": -0.01}, {"flops<=1.01x": 0.04},
                                                     {"flops<=1.01x": 0.3}]
    assert [t.number for t in study.best_trials] == [0]  # Optuna's own best trials are the feasible ones


def test_a_constrained_search_trains_no_design_over_a_constraint_and_fronts_and_picks_none(tmp_path, local_ray):
    """The issue's done-when, at smoke size: clean error against latency under flops<=1.01x, where
    push-pull's extra pull convolutions put every pp design over the bound."""
    from ppsearch.cli import main
    from ppsearch.reporting.report import write_report
    from ppsearch.selection.pareto import validation_front
    from ppsearch.selection.pick import pick

    space = tiny_space(tmp_path)
    settings = RunSettings(**{**tiny_settings(space, trials=3).__dict__, "objectives": ("clean_error", "latency_ms"),
                              "constraints": ("flops<=1.01x",)})
    table = run_search(tmp_path / "run", settings, Resources(cpus_per_trial=1), quiet=True)

    by_origin = table.set_index("trial_id")
    pp = table["placement"] == "pp"
    searched_pp = pp & (table["origin"] == "searched")
    paper_pp = table["origin"] == "paper:pp"
    assert (table.loc[pp, Column.CONSTRAINT_VIOLATION] > 0).all()
    assert (table.loc[~pp & (table["antialias"] == "none"), Column.CONSTRAINT_VIOLATION] == 0).all()
    # a searched design over the bound is measured, never trained; the paper's is trained as a reference
    assert (table.loc[searched_pp, "status"] == "infeasible").all()
    assert (table.loc[searched_pp, Column.EPOCHS_COMPLETED] == 0).all()
    assert not any((tmp_path / "run" / "trials" / t / "model.safetensors").exists()
                   for t in table.loc[searched_pp, "trial_id"])
    assert table.loc[paper_pp, "status"].item() == "completed"
    front = validation_front(table, settings.objectives)
    assert len(front) and (front[Column.CONSTRAINT_VIOLATION] <= 0).all()
    assert "paper:pp" not in set(front["origin"])
    picked = pick(table, settings.objectives)
    assert by_origin.loc[picked[Column.CONFIG_ID], Column.CONSTRAINT_VIOLATION] <= 0
    for row in table.itertuples():  # every trial's cost is the cost of its design
        assert row.latency_ms > 0 and row.flops > 0 and row.latency_batch == 1

    study = open_study(tmp_path / "run")
    states = {t.number: t.state.name for t in study.trials}
    assert all(states[int(t)] == "PRUNED" for t in table.loc[searched_pp, "trial_id"])
    assert all("flops<=1.01x" in t.constraints for t in study.trials)

    report = write_report(tmp_path / "run").read_text()
    assert "clean error vs latency_ms" in report and "what each design costs" in report
    assert "Over the constraints (flops&lt;=1.01x)" in report and "pp (over a constraint)" in report
    cost = pd.read_csv(tmp_path / "run" / "report-cost.csv")
    assert cost.set_index("configuration").loc["plain", "FLOPs ratio"] == 1.0

    cheapest = table.loc[table["status"] == "completed", "latency_ms"].min()
    assert main(["pick", str(tmp_path / "run"), "--max-latency-ms", f"{cheapest / 10:.6f}"]) == 2
    assert main(["pick", str(tmp_path / "run"), "--max-flops-ratio", "1.0"]) == 0


@pytest.mark.bad_input
def test_a_latency_backend_whose_packages_are_missing_is_refused_before_anything_is_written(tmp_path, capsys,
                                                                                          monkeypatch):
    from ppsearch.cli import main
    from ppsearch.models import latency

    monkeypatch.setattr(latency, "missing_packages", lambda *names: ["onnxruntime"])
    assert main(["run", "--space", str(tiny_space(tmp_path)), "--budget", "smoke", "--out", str(tmp_path / "run"),
                 "--latency-backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("ppsearch: error: --latency-backend onnxruntime needs onnxruntime: "
                           "pip install 'ppsearch[export]'")
    assert not (tmp_path / "run").exists()
