"""The search end to end on a real local Ray with a real Optuna journal, at tiny budgets."""
import json
import os
import signal
import subprocess
import sys
import time
import textwrap

import optuna
import pandas as pd
import pytest

from ppsearch.search import Resources, SearchSettings, _searcher, run_search
from ppsearch.space import load_space

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


def _space(tmp_path, extra=""):
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(TINY_SPACE) + extra)
    return path


def _settings(space_path, trials, scheduler="none", sampler="tpe"):
    space = load_space(space_path)
    return SearchSettings(str(space_path), "fashion-mnist", "smoke", space.budget("smoke"), space.objectives,
                          sampler, scheduler, trials, 0)


def _study(run_dir):
    name = json.loads((run_dir / "run.json").read_text())["study_name"]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def test_a_multi_objective_search_end_to_end(tmp_path, local_ray):
    space = _space(tmp_path, "  exploding: {placement: pp, alpha: 1.0e+38}\n")
    run_dir = tmp_path / "run"
    table = run_search(run_dir, _settings(space, trials=2, scheduler="moasha"), Resources(cpus_per_trial=1), quiet=True)

    assert len(table) == 5 and table["trial_id"].is_unique
    by_origin = table.set_index("origin")
    assert {"paper:plain", "paper:pp", "paper:exploding"} <= set(by_origin.index)
    assert by_origin.loc["paper:exploding", "status"] == "failed"
    assert by_origin.loc["paper:exploding", "failure_reason"].startswith("NonFiniteLoss")
    assert by_origin.loc["paper:plain", "status"] == "completed" and by_origin.loc["paper:pp", "status"] == "completed"
    assert (table["origin"] == "searched").sum() == 2 and table["origin"].str.startswith("paper:").sum() == 3
    assert pd.read_parquet(run_dir / "results.parquet").shape == table.shape
    assert (run_dir / "results.csv").is_file()

    study = _study(run_dir)
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE] * 2
    states = {t.user_attrs["tune_trial_id"]: t.state for t in study.trials}
    for row in table.itertuples():
        expected = {"completed": "COMPLETE", "failed": "FAIL", "pruned": "PRUNED"}[row.status]
        assert states[row.trial_id].name == expected, row
    completed = table[table["status"] == "completed"].set_index("trial_id")
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        row = completed.loc[trial.user_attrs["tune_trial_id"]]
        assert trial.values == pytest.approx([row["clean_error"], row["mce"]])
    assert study.trials[0].params == {"placement": "none", "antialias": "none"}  # papers first


def test_trials_stopped_early_are_told_to_optuna_as_pruned(tmp_path):
    space_path = _space(tmp_path)
    settings = _settings(space_path, trials=3)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    settings = SearchSettings(**{**settings.__dict__, "study_name": "pruning"})
    searcher = _searcher(load_space(space_path), settings, storage)
    for trial_id in ("a", "b", "c"):
        searcher.suggest(trial_id)
    # a: stopped by MO-ASHA after an epoch report (which has no final status)
    searcher.on_trial_complete("a", {"epoch": 1, "rung_clean_error": 0.5, "status": "running", "clean_error": 0.1})
    searcher.on_trial_complete("b", {"epoch": 2, "status": "completed", "clean_error": 0.2, "mce": 0.9})
    searcher.on_trial_complete("c", {"epoch": 0, "status": "failed"})
    study = optuna.load_study(study_name="pruning", storage=storage)
    assert [t.state.name for t in study.trials] == ["PRUNED", "COMPLETE", "FAIL"]
    assert study.best_trials[0].values == [0.2, 0.9] and len(study.best_trials) == 1


def test_trials_orphaned_by_a_killed_driver_are_run_and_told(tmp_path, local_ray):
    """A driver killed between asking Optuna and Ray saving its state leaves a RUNNING Optuna trial
    that no Ray trial will run; the end of the search runs it into its folder and tells Optuna."""
    from ppsearch.generate import cached_sets
    from ppsearch.search import TrialContext, _settle_orphans
    from ppsearch.trial import trial_dataset

    space_path = _space(tmp_path)
    space = load_space(space_path)
    settings = SearchSettings(**{**_settings(space_path, trials=0).__dict__, "study_name": "orphans"})
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(study_name="orphans", storage=storage, directions=["minimize"] * 2)
    study.enqueue_trial(space.search_point(space.paper_configs["pp"]))
    orphan = study.ask()
    space.suggest(orphan)
    orphan.set_user_attr("tune_trial_id", "lost0001")
    data = trial_dataset("fashion-mnist")
    sets = cached_sets(tmp_path / "sets", data.test_images[:5], data.test_labels[:5], "fashion-mnist", progress=False)
    context = TrialContext(tmp_path, space, settings, sets, (), 1, None)
    _settle_orphans(storage, context, Resources())
    trial = optuna.load_study(study_name="orphans", storage=storage).trials[0]
    record = json.loads((tmp_path / "trials" / "lost0001" / "record.json").read_text())
    assert record["status"] == "completed" and record["placement"] == "pp"
    assert trial.state.name == "COMPLETE" and trial.values == pytest.approx([record["clean_error"], record["mce"]])


def _ray_trial_processes():
    out = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc"], capture_output=True, text=True).stdout
    return out.split()


def test_kill_9_of_the_driver_then_resume(tmp_path):
    space = _space(tmp_path)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "ppsearch", "run", "--space", str(space), "--budget", "smoke", "--trials", "2",
               "--scheduler", "none", "--max-concurrent", "1", "--out", str(run_dir), "--quiet"]
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:  # wait until one trial has finished and the next has started
        records = list(run_dir.glob("trials/*/record.json"))
        if records and len(list(run_dir.glob("trials/*"))) > len(records):
            break
        time.sleep(0.5)
    else:
        driver.kill()
        pytest.fail("the search never finished a trial")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    for _ in range(60):  # Ray ends the driver's trial workers
        if not _ray_trial_processes():
            break
        time.sleep(1)

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    table = pd.read_parquet(run_dir / "results.parquet")
    assert table["trial_id"].is_unique
    assert (table["status"] == "completed").sum() >= 4  # 2 papers + 2 searched, none lost
    assert {"paper:plain", "paper:pp"} <= set(table["origin"])
    study = _study(run_dir)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    told = {t.user_attrs["tune_trial_id"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert told == set(table.loc[table["status"] == "completed", "trial_id"])  # study and table agree
    for trial_id in told:
        assert (run_dir / "trials" / trial_id / "record.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--sampler", "cmaes"], "unknown sampler 'cmaes'; allowed: tpe, nsga2, gp, random"),
    (["--scheduler", "asha"], "unknown scheduler 'asha'; allowed: moasha, none"),
    (["--objectives", "clean_error,accuracy"], "unknown objective 'accuracy'"),
    (["--budget", "week"], "unknown budget 'week'"),
    (["--space", "vgg"], "unknown space 'vgg'"),
    (["--trials", "-1"], "--trials must be 0 or more"),
    (["--resume"], "holds no run to resume"),
])
def test_run_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    from ppsearch.cli import main

    assert main(["run", "--dataset", "fashion-mnist", "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_run_directory_of_other_settings_is_refused(tmp_path):
    from ppsearch.search import prepare_run

    settings = _settings(_space(tmp_path), trials=2)
    prepare_run(tmp_path / "run", settings)
    with pytest.raises(ValueError, match="holds a run with sampler='tpe', not 'random'"):
        prepare_run(tmp_path / "run", SearchSettings(**{**settings.__dict__, "sampler": "random"}))
    assert prepare_run(tmp_path / "run", SearchSettings(**{**settings.__dict__, "trials": 5})).study_name
