"""`ppsearch run --seed-from`: a new architecture's search starts from earlier fronts' designs."""
import dataclasses
import textwrap

import pandas as pd
import pytest
from run_dirs import tiny_settings, tiny_space, write_run

from ppsearch.cli import main
from ppsearch.rundir import RESULTS_STEM, open_study, read_settings, validation_column
from ppsearch.search.engine import Resources, run_search
from ppsearch.search.seeding import seeded_designs
from ppsearch.search.space import load_space
from ppsearch.search.study_searcher import trial_folder_name

WRN_SPACE = """
name: tiny-wrn
dataset: fashion-mnist
defaults: {arch: wrn-10-1, augmentation: none}
dimensions:
  placement: {choices: [none, pp, b1]}
  alpha: {low: 0.5, high: 2.0, log: true, when: {placement: [pp, b1]}}
objectives: [clean_error, mce]
budgets:
  smoke: {train_images: 128, eval_images: 100, c_images: 5, p_images: 2}
paper_configs:
  plain: {placement: none}
"""


def _wrn_space(tmp_path, text):
    path = tmp_path / "wrn.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _row(trial_id, origin, placement, alpha, clean, mce):
    return {"trial_id": trial_id, "config_id": trial_id, "origin": origin, "status": "completed", "arch": "resnet8",
            "augmentation": "none", "placement": placement, "variant": "upsample", "scale": 2.0,
            "pull_kernel_size": None, "alpha": alpha, "trainable_alpha": False, "avg_kernel_size": 0,
            "antialias": "none", "antialias_position": "after_conv1", "clean_error": clean, "mce": mce,
            "val_clean_error": clean, "val_mce": mce}


def _earlier_run(tmp_path, name="resnet-run", rows=None):
    """A finished run whose validation front holds five designs (clean error up, mCE down)."""
    rows = rows or [_row("00000", "paper:plain", "none", 1.0, 0.10, 1.0),
                    _row("00001", "paper:pp", "pp", 1.0, 0.11, 0.9),
                    _row("00002", "searched", "b1", 0.7, 0.12, 0.8),
                    _row("00003", "searched", "all", 1.0, 0.13, 0.7),
                    _row("00004", "searched", "b1", 5.0, 0.14, 0.6)]
    searched = sum(row["origin"] == "searched" for row in rows)
    return write_run(tmp_path / name, rows, objectives=("clean_error", "mce"), trials=searched)


def test_front_designs_are_mapped_and_what_cannot_be_expressed_is_listed(tmp_path):
    space = load_space(_wrn_space(tmp_path, WRN_SPACE))
    again = _earlier_run(tmp_path, "again", [_row("00007", "searched", "b1", 0.7, 0.1, 0.1)])
    seeded = seeded_designs(space, ("clean_error", "mce"), [_earlier_run(tmp_path), again])
    assert seeded.enqueued == (("front:resnet-run:00001", {"placement": "pp", "alpha": 1.0}),
                               ("front:resnet-run:00002", {"placement": "b1", "alpha": 0.7}))
    assert seeded.skipped == (
        "front:resnet-run:00000 (placement=none, antialias=none): skipped, it is the paper configuration paper:plain, "
        "which the run trains anyway",
        "front:resnet-run:00003 (placement=all, variant=upsample, scale=2.0, alpha=1.0, trainable_alpha=False, "
        "antialias=none): skipped, placement='all' is outside the space's placement (one of ['none', 'pp', 'b1'])",
        "front:resnet-run:00004 (placement=b1, variant=upsample, scale=2.0, alpha=5.0, trainable_alpha=False, "
        "antialias=none): skipped, alpha=5.0 is outside the space's alpha (in [0.5, 2.0])",
        "front:again:00007 (placement=b1, variant=upsample, scale=2.0, alpha=0.7, trainable_alpha=False, "
        "antialias=none): skipped, the same design as front:resnet-run:00002")


@pytest.mark.parametrize("change, message", [
    (dict(objectives=("clean_error", "mfr")), "optimised clean_error, mfr, this run optimises clean_error, mce"),
    (dict(trials=5), "is not a finished run (0 trials still open, 3 of its 5 searched trials ended)"),
])
def test_seed_runs_must_be_finished_runs_of_the_same_objectives(tmp_path, capsys, change, message):
    earlier = _earlier_run(tmp_path)
    write_run(earlier, pd.read_parquet(earlier / f"{RESULTS_STEM}.parquet"),
              **{"objectives": ("clean_error", "mce"), "trials": 3, **change})
    out = tmp_path / "new"
    assert main(["run", "--space", str(tiny_space(tmp_path)), "--budget", "smoke", "--seed-from", str(earlier),
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ppsearch: error: --seed-from {earlier}") and message in err and "\n" not in err
    assert not out.exists()


@pytest.mark.bad_input
def test_a_seed_run_that_is_not_a_run_is_one_line(tmp_path, capsys):
    out = tmp_path / "new"
    assert main(["run", "--space", str(tiny_space(tmp_path)), "--budget", "smoke", "--seed-from", str(tmp_path),
                 "--out", str(out), "--quiet"]) == 2
    assert "has no results table" in capsys.readouterr().err
    assert not out.exists()


def test_a_wrn_search_starts_from_a_resnet_front(tmp_path, local_ray):
    """A smoke run of a tiny ResNet space seeds one of a tiny WideResNet space: the seeded designs
    are trials of the new run with their origin, and its study holds only values it measured."""
    resnet_dir = tmp_path / "resnet"
    run_search(resnet_dir, tiny_settings(tiny_space(tmp_path), trials=1), Resources(cpus_per_trial=1), quiet=True)
    # the tiny space's alpha range, and no paper configuration: every front design is carried
    wrn_space = _wrn_space(tmp_path, WRN_SPACE.replace("high: 2.0", "high: 1.0e38").split("paper_configs:")[0])
    settings = dataclasses.replace(tiny_settings(wrn_space, trials=1), seed_from=(str(resnet_dir),))
    space = load_space(wrn_space)
    expected = seeded_designs(space, settings.objectives, settings.seed_from)
    assert expected.enqueued and not expected.skipped
    wrn_dir = tmp_path / "wrn"
    table = run_search(wrn_dir, settings, Resources(cpus_per_trial=1), quiet=True)

    seeded = table[table["origin"].str.startswith("front:resnet:")]
    assert sorted(seeded["origin"]) == sorted(origin for origin, _ in expected.enqueued)
    assert (seeded["arch"] == "wrn-10-1").all() and (table["arch"] == "wrn-10-1").all()
    for origin, point in expected.enqueued:
        row = seeded[seeded["origin"] == origin].iloc[0]
        assert all(row[k] == v for k, v in point.items())
    assert len(table) == len(expected.enqueued) + 1  # the seeded designs, then one searched trial
    assert read_settings(wrn_dir).seed_from == (str(resnet_dir),)

    study = open_study(wrn_dir)
    selection = [validation_column(o) for o in settings.objectives]
    measured = table.set_index("trial_id")[selection]
    told = {trial_folder_name(t.number): t.values for t in study.trials if t.values is not None}
    assert sorted(told) == sorted(measured.index)  # every trial of this run, and nothing else
    for trial_id, values in told.items():  # each with the values this run measured for it
        assert values == measured.loc[trial_id].tolist()
