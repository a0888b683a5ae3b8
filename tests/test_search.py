"""The search end to end on a real local Ray with a real Optuna journal, at tiny budgets."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pandas as pd
import pytest

from ppsearch.rundir import RunSettings, read_settings
from ppsearch.search.engine import Resources, make_sampler, run_search
from ppsearch.search.space import load_space
from ppsearch.search.study_searcher import StudySearcher, open_study

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
    return RunSettings(str(space_path), "fashion-mnist", "smoke", space.budget("smoke"), space.objectives,
                          sampler, scheduler, trials, 0)


def _study(run_dir):
    name = read_settings(run_dir).study_name
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
    assert study.metric_names == ["clean_error", "mce"]  # optuna-dashboard names the objectives
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
    space = load_space(space_path)
    study = open_study(space, storage, "pruning", settings.objectives, make_sampler("tpe", 0))
    searcher = StudySearcher(study, space, settings.objectives)
    for trial_id in ("a", "b", "c"):
        searcher.suggest(trial_id)
    # a: stopped by MO-ASHA after an epoch report (which has no final status)
    searcher.on_trial_complete("a", {"epoch": 1, "rung_clean_error": 0.5, "status": "running", "clean_error": 0.1})
    searcher.on_trial_complete("b", {"epoch": 2, "status": "completed", "clean_error": 0.2, "mce": 0.9})
    searcher.on_trial_complete("c", {"epoch": 0, "status": "failed"})
    study = optuna.load_study(study_name="pruning", storage=storage)
    assert [t.state.name for t in study.trials] == ["PRUNED", "COMPLETE", "FAIL"]
    assert [t.user_attrs["origin"] for t in study.trials] == ["paper:plain", "paper:pp", "searched"]
    assert study.best_trials[0].values == [0.2, 0.9] and len(study.best_trials) == 1


def test_trials_orphaned_by_a_killed_driver_are_run_and_told(tmp_path, local_ray):
    """A driver killed between asking Optuna and Ray saving its state leaves a RUNNING Optuna trial
    that no Ray trial will run; the end of the search runs it into its folder and tells Optuna."""
    from ppsearch.robustness.generate import cached_sets
    from ppsearch.search.engine import TrialContext, _settle_orphans
    from ppsearch.training.trial import trial_dataset

    space_path = _space(tmp_path)
    space = load_space(space_path)
    settings = RunSettings(**{**_settings(space_path, trials=0).__dict__, "study_name": "orphans"})
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
    from ppsearch.search.engine import prepare_run

    settings = _settings(_space(tmp_path), trials=2)
    prepare_run(tmp_path / "run", settings)
    with pytest.raises(ValueError, match="holds a run with sampler='tpe', not 'random'"):
        prepare_run(tmp_path / "run", RunSettings(**{**settings.__dict__, "sampler": "random"}))
    assert prepare_run(tmp_path / "run", RunSettings(**{**settings.__dict__, "trials": 5})).study_name


def test_the_progress_line_counts_trials_in_the_state_they_are_entering(tmp_path, capsys):
    """Ray calls the callbacks before it changes a trial's state: a trial starting is counted as
    running, a trial ending as completed (its record) or pruned (none), never as running."""
    from ray.tune.experiment import Trial

    from ppsearch.rundir import write_record
    from ppsearch.search.engine import results_callback

    def trial(trial_id, status):
        made = Trial("search_trial", config={"placement": "none", "origin": "searched"}, trial_id=trial_id, stub=True)
        made.set_status(status)
        return made

    write_record(tmp_path / "trials" / "a", {"status": "completed", "placement": "none", "clean_error": 0.5,
                                             "mce": 1.0, "epochs_completed": 2})
    callback = results_callback(tmp_path, ("clean_error", "mce"), quiet=False)
    a, b, c = trial("a", Trial.RUNNING), trial("b", Trial.RUNNING), trial("c", Trial.PENDING)
    callback.on_trial_complete(0, [a, b, c], a)
    callback.on_trial_start(0, [trial("a", Trial.TERMINATED), b, c], c)
    callback.on_trial_complete(0, [trial("a", Trial.TERMINATED), b, trial("c", Trial.RUNNING)], b)
    lines = [line.split("trials: ")[1].split(" |")[0] for line in capsys.readouterr().out.splitlines()]
    assert lines == ["1 completed, 0 pruned, 0 failed, 1 running, 1 pending",
                     "1 completed, 0 pruned, 0 failed, 2 running, 0 pending",
                     "1 completed, 1 pruned, 0 failed, 1 running, 0 pending"]
