"""The search end to end on a real local Ray with a real Optuna journal, at tiny budgets."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pandas as pd
import pytest
from run_dirs import TINY_SPACE, tiny_settings, tiny_space

from ppsearch.rundir import RunSettings, has_test_values, open_study, read_settings, write_settings
from ppsearch.search.confirmation import next_confirmations
from ppsearch.search.engine import Resources, run_search
from ppsearch.search.space import load_space
from ppsearch.search.strategies import make_sampler
from ppsearch.search.study_searcher import ASSIGNMENT, StudySearcher, enqueue_origins, trial_folder_name
from ppsearch.selection.pareto import reported_trials, validation_front
from ppsearch.selection.racing import pairs_to_confirm


def test_a_multi_objective_search_end_to_end(tmp_path, local_ray):
    space = tiny_space(tmp_path, "  exploding: {placement: pp, alpha: 1.0e+38}\n")
    run_dir = tmp_path / "run"
    table = run_search(run_dir, tiny_settings(space, trials=2, scheduler="moasha"), Resources(cpus_per_trial=1), quiet=True)

    assert len(table) == 5 and table["trial_id"].is_unique
    by_origin = table.set_index("origin")
    assert {"paper:plain", "paper:pp", "paper:exploding"} <= set(by_origin.index)
    assert by_origin.loc["paper:exploding", "status"] == "failed"
    assert by_origin.loc["paper:exploding", "failure_reason"].startswith("NonFiniteLoss")
    assert by_origin.loc["paper:plain", "status"] == "completed" and by_origin.loc["paper:pp", "status"] == "completed"
    assert (table["origin"] == "searched").sum() == 2 and table["origin"].str.startswith("paper:").sum() == 3
    assert pd.read_parquet(run_dir / "results.parquet").shape == table.shape
    assert (run_dir / "results.csv").is_file()

    study = open_study(run_dir)
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE] * 2
    assert study.metric_names == ["clean_error", "mce"]  # optuna-dashboard names the objectives
    assert len(study.trials) == 5
    states = {trial_folder_name(t.number): t.state for t in study.trials}
    for row in table.itertuples():
        expected = {"completed": "COMPLETE", "failed": "FAIL", "pruned": "PRUNED"}[row.status]
        assert states[row.trial_id].name == expected, row
    completed = table[table["status"] == "completed"].set_index("trial_id")
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        row = completed.loc[trial_folder_name(trial.number)]
        # Optuna is told validation values only; the test split is measured after the search, never told
        assert trial.values == pytest.approx([row["val_clean_error"], row["val_mce"]])
    assert study.trials[0].params == {"placement": "none", "antialias": "none"}  # papers first
    # test values where a report states them (the validation front's and the papers'), nowhere else
    reported = set(reported_trials(table, ("clean_error", "mce"))["trial_id"])
    assert {"00000", "00001"} <= reported
    assert dict(zip(table["trial_id"], has_test_values(table))) == {t: t in reported for t in table["trial_id"]}
    assert (table.set_index("trial_id").loc[sorted(reported), "test_eval_seconds"] > 0).all()


def test_trials_stopped_early_are_told_to_optuna_as_pruned(tmp_path):
    space_path = tiny_space(tmp_path)
    settings = RunSettings(**{**tiny_settings(space_path, trials=3).__dict__, "study_name": "pruning"})
    write_settings(tmp_path, settings)
    space = load_space(space_path)
    study = open_study(tmp_path, make_sampler("tpe", 0))
    enqueue_origins(study, space)
    ended = []
    searcher = StudySearcher(study, space, settings.objectives, trials=1, seed=0, resumable=(),
                             on_ended=lambda assignment, status, last, reason: ended.append((assignment.study_trial,
                                                                                             status)))
    handed_out = [searcher.suggest(trial_id) for trial_id in ("a", "b", "c", "d")]
    assert [c[ASSIGNMENT].origin for c in handed_out[:3]] == ["paper:plain", "paper:pp", "searched"]
    assert handed_out[3] == "FINISHED"  # two papers and the one searched trial asked for
    # a: stopped by MO-ASHA after an epoch report (which has no final status)
    searcher.on_trial_complete("a", {"epoch": 1, "rung_clean_error": 0.5, "status": "running", "clean_error": 0.1})
    searcher.on_trial_complete("b", {"epoch": 2, "status": "completed", "clean_error": 0.2, "mce": 0.9})
    searcher.on_trial_complete("c", {"epoch": 0, "status": "failed"})
    study = open_study(tmp_path)
    assert [t.state.name for t in study.trials] == ["PRUNED", "COMPLETE", "FAIL"]
    assert [t.user_attrs["origin"] for t in study.trials] == ["paper:plain", "paper:pp", "searched"]
    assert study.best_trials[0].values == [0.2, 0.9] and len(study.best_trials) == 1
    assert ended == [(0, "pruned")]  # the failed trial wrote its own record


@pytest.mark.bad_input
def test_trials_an_interrupted_driver_left_running_are_resumed_within_the_budget(tmp_path, local_ray):
    """A driver killed after asking Optuna for a trial leaves it RUNNING; the next driver hands it
    out again, into its own folder, and asks for no more trials than the budget."""
    space_path = tiny_space(tmp_path)
    space = load_space(space_path)
    run_dir = tmp_path / "run"
    settings = RunSettings(**{**tiny_settings(space_path, trials=1).__dict__, "study_name": "interrupted"})
    run_dir.mkdir()
    write_settings(run_dir, settings)
    study = open_study(run_dir, make_sampler("tpe", 0))
    enqueue_origins(study, space)
    orphan = study.ask()  # the first paper configuration, asked and never told
    space.suggest(orphan)
    table = run_search(run_dir, settings, Resources(cpus_per_trial=1), quiet=True)
    study = open_study(run_dir)
    assert len(study.trials) == 3 and not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert sorted(table["trial_id"]) == ["00000", "00001", "00002"] and (table["status"] == "completed").all()
    assert table.set_index("trial_id").loc["00000", "origin"] == "paper:plain"


def _ray_trial_processes():
    out = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc|ray::measure_trial_test"], capture_output=True,
                         text=True).stdout
    return out.split()


def _start_driver(command, run_dir, records: int, env=None) -> subprocess.Popen:
    """The `ppsearch run` command in a subprocess, returned once ``records`` trials have finished
    and another has started."""
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        done = list(run_dir.glob("trials/*/record.json"))
        if len(done) >= records and len(list(run_dir.glob("trials/*"))) > len(done):
            return driver
        if driver.poll() is not None:
            pytest.fail(f"the search ended before it could be interrupted: {driver.stderr.read()[-2000:]}")
        time.sleep(0.5)
    driver.kill()
    pytest.fail("the search never finished a trial")


def _wait_for_ray_workers_to_end() -> None:
    for _ in range(60):
        if not _ray_trial_processes():
            return
        time.sleep(1)


def _kill_9_and_resume(command, run_dir, records: int) -> pd.DataFrame:
    """Start ``command``, kill -9 its driver once ``records`` trials have finished and another has
    started, repeat the command, and return the results table it ends with."""
    driver = _start_driver(command, run_dir, records=records)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    _wait_for_ray_workers_to_end()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return pd.read_parquet(run_dir / "results.parquet")


def _assert_complete(run_dir, trials: int) -> None:
    """The run holds exactly its budget: the papers' configurations plus ``trials`` searched ones,
    each once, and the study and the table agree."""
    table = pd.read_parquet(run_dir / "results.parquet")
    assert table["trial_id"].is_unique and len(table) == 2 + trials
    assert (table["status"] == "completed").all()
    assert {"paper:plain", "paper:pp"} <= set(table["origin"]) and (table["origin"] == "searched").sum() == trials
    study = open_study(run_dir)
    assert len(study.trials) == 2 + trials and not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    told = {trial_folder_name(t.number) for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert told == set(table["trial_id"])


def _command(space, run_dir, trials, *extra):
    return [sys.executable, "-m", "ppsearch", "run", "--space", str(space), "--budget", "smoke", "--trials",
            str(trials), "--scheduler", "none", "--max-concurrent", "1", "--out", str(run_dir), *extra]


@pytest.mark.bad_input
def test_one_driver_at_a_time_kill_9_then_resume_and_lost_records_are_repaired(tmp_path):
    """A second driver on a running run is refused in one line naming the holder; kill -9 of the
    holder does not leave the run locked (the next driver takes over and says so) and loses no
    trial; a finished run whose record was deleted measures that trial again when rerun."""
    space = tiny_space(tmp_path)
    run_dir = tmp_path / "run"
    command = _command(space, run_dir, 3, "--quiet")
    driver = _start_driver(command, run_dir, records=1)
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr[-2000:]
    assert f"{run_dir} is in use by another ppsearch run (pid {driver.pid} on " in second.stderr
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    _wait_for_ray_workers_to_end()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"took over {run_dir} from the driver that ended without releasing it (pid {driver.pid} on " in resumed.stderr
    _assert_complete(run_dir, trials=3)

    (run_dir / "trials" / "00001" / "record.json").unlink()
    measured = (run_dir / "trials" / "00001" / "model.safetensors").stat().st_mtime_ns
    repaired = subprocess.run(_command(space, run_dir, 3), capture_output=True, text=True, timeout=600)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert "trial 00001: complete in the study but without a record; resuming it from its checkpoint" in repaired.stdout
    assert "took over" not in repaired.stderr  # the previous driver released its lock
    _assert_complete(run_dir, trials=3)
    assert (run_dir / "trials" / "00001" / "model.safetensors").stat().st_mtime_ns > measured


@pytest.mark.bad_input
def test_confirmation_seeds_survive_kill_9_and_stay_out_of_the_study(tmp_path):
    """`--confirm-seeds 2` retrains the validation front and the papers with one more seed, as Ray
    trials of the run that are not Optuna trials; a driver killed among them loses and duplicates
    nothing when the command is repeated."""
    space = tiny_space(tmp_path)
    run_dir = tmp_path / "run"
    command = _command(space, run_dir, 1, "--quiet", "--confirm-seeds", "2")
    table = _kill_9_and_resume(command, run_dir, records=4)  # the 3 search trials and a confirmation
    assert table["trial_id"].is_unique and (table["status"] == "completed").all()
    search = table[table["config_id"] == table["trial_id"]]
    confirmations = table[table["config_id"] != table["trial_id"]].set_index("trial_id")
    assert len(search) == 3 and len(open_study(run_dir).trials) == 3  # confirmations are not study trials
    front = set(validation_front(table, ("clean_error", "mce"))["trial_id"])
    papers = set(search.loc[search["origin"].str.startswith("paper:"), "trial_id"])
    assert set(confirmations.index) == {f"{t}-seed1" for t in front | papers}
    for trial_id, row in confirmations.iterrows():
        original = search.set_index("trial_id").loc[row["config_id"]]
        assert row["seed"] == 1 and original["seed"] == 0 and row["origin"] == original["origin"]
        assert row["placement"] == original["placement"] and row["val_clean_error"] >= 0
        assert row["latency_ms"] == original["latency_ms"]  # measured once per configuration, in latency/
        assert (run_dir / "trials" / trial_id / "record.json").is_file()


@pytest.mark.bad_input
def test_test_values_measured_after_the_search_survive_kill_9_each_measured_once(tmp_path):
    """After the search, the reported search trials (the validation front's and the papers') get
    their test values from their saved models. A driver killed while measuring them leaves a run
    that `report` refuses in one line naming what is missing; the same command measures the rest
    without retraining, and no trial is measured twice."""
    space, run_dir = tiny_space(tmp_path), tmp_path / "run"
    command = _command(space, run_dir, 2)
    with open(tmp_path / "stderr", "w") as stderr:
        driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        started = next((line for line in driver.stdout if line.startswith("measuring the test split")), None)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    assert started is not None, (tmp_path / "stderr").read_text()[-2000:]
    _wait_for_ray_workers_to_end()
    records = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("trials/*/record.json")}
    assert len(records) == 4 and all("val_clean_error" in r for r in records.values())
    measured = {t: (run_dir / "trials" / t / "record.json").stat().st_mtime_ns
                for t, r in records.items() if "clean_error" in r}
    assert len(measured) < 4  # a search trial has validation values only until it is measured

    refused = subprocess.run([sys.executable, "-m", "ppsearch", "report", str(run_dir)], capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]
    assert "reported configuration(s) have no test values yet" in refused.stderr
    assert "run the interrupted `ppsearch run` command again" in refused.stderr

    resumed = subprocess.run(command + ["--quiet"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    table = pd.read_parquet(run_dir / "results.parquet")
    reported = set(reported_trials(table, ("clean_error", "mce"))["trial_id"])
    assert dict(zip(table["trial_id"], has_test_values(table))) == {t: t in reported for t in table["trial_id"]}
    assert {t: (run_dir / "trials" / t / "record.json").stat().st_mtime_ns for t in measured} == measured
    assert (table["epochs_completed"] == 2).all() and len(table) == 4  # nothing retrained, nothing added
    assert subprocess.run([sys.executable, "-m", "ppsearch", "report", str(run_dir)], capture_output=True,
                          timeout=300).returncode == 0


# Ctrl-C at a terminal reaches a foreground command whose SIGINT is at its default. A suite started
# in the background of a non-interactive shell inherits SIGINT ignored, and Python keeps it ignored,
# so the driver is started as from a terminal.
_AS_FROM_A_TERMINAL = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                       "runpy.run_module('ppsearch', run_name='__main__', alter_sys=True)")


@pytest.mark.parametrize("sent, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
@pytest.mark.bad_input
def test_an_interrupted_run_says_so_exits_non_zero_and_resumes_within_its_budget(tmp_path, sent, code, name):
    """Each stopping signal, sent twice within a second (an impatient Ctrl-C), stops the run once,
    cleanly: one line, exit 128 + the signal, no traceback, no crash in Ray's shutdown. (SIGHUP
    takes the same path: test_dashboard checks its 129.)"""
    space = tiny_space(tmp_path)
    run_dir = tmp_path / "run"
    python, _, _, *args = _command(space, run_dir, 0)  # python -m ppsearch ARGS
    driver = _start_driver([python, "-c", _AS_FROM_A_TERMINAL, *args], run_dir, records=1)
    driver.send_signal(sent)
    time.sleep(0.3)
    driver.send_signal(sent)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == code, err[-2000:]
    assert f"ppsearch: interrupted ({name}); what finished is kept: run the same command again to continue" in err
    assert "Pareto front" not in out and "Aborted" not in err and "Traceback" not in err  # no summary, no dump
    _wait_for_ray_workers_to_end()
    resumed = subprocess.run(_command(space, run_dir, 0, "--quiet"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "] trials:" not in resumed.stdout  # --quiet holds for the resumed run too: no progress lines
    _assert_complete(run_dir, trials=0)  # --trials 0: the papers only, none added by the interruption


@pytest.mark.bad_input
def test_a_torn_journal_is_repaired_with_a_copy_kept(tmp_path):
    space = tiny_space(tmp_path)
    run_dir = tmp_path / "run"
    assert subprocess.run(_command(space, run_dir, 0, "--quiet"), capture_output=True, timeout=600).returncode == 0
    journal = run_dir / "optuna.journal"
    intact = journal.read_bytes()
    journal.write_bytes(intact[:-7])  # a driver killed in the middle of writing its last record
    again = subprocess.run(_command(space, run_dir, 1, "--quiet"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"ppsearch: repaired {journal}: dropped a partial last record of" in again.stderr
    copies = list(run_dir.glob("optuna.journal.damaged-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == intact[:-7]
    _assert_complete(run_dir, trials=1)
    assert subprocess.run([sys.executable, "-m", "ppsearch", "report", str(run_dir)], capture_output=True,
                          timeout=300).returncode == 0


@pytest.mark.parametrize("args, message", [
    (["--sampler", "cmaes"], "unknown sampler 'cmaes'; allowed: tpe, nsga2, gp, random"),
    (["--scheduler", "asha"], "unknown scheduler 'asha'; allowed: moasha, none"),
    (["--objectives", "clean_error,accuracy"], "unknown objective 'accuracy'"),
    (["--budget", "week"], "unknown budget 'week'"),
    (["--space", "vgg"], "unknown space 'vgg'"),
    (["--trials", "-1"], "argument --trials: must be an integer >= 0"),
    (["--address", "ray://127.0.0.1:10001"], "Ray Client addresses are not supported"),
    (["--address", "127.0.0.1:9"], "--address 127.0.0.1:9: no Ray cluster answers there"),
    (["--gpus-per-trial", "1"], "no node of the Ray cluster can run a trial with 1 CPUs and 1 GPUs"),
    (["--resume"], "holds no run to resume"),
])
@pytest.mark.bad_input
def test_run_bad_input_is_one_line_exit_2(tmp_path, capsys, local_ray, args, message):
    from ppsearch.cli import main

    assert main(["run", "--dataset", "fashion-mnist", "--budget", "smoke", "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.bad_input
def test_a_run_directory_of_other_settings_is_refused(tmp_path):
    from ppsearch.rundir import settings_for_run

    settings = tiny_settings(tiny_space(tmp_path), trials=2)
    write_settings(tmp_path / "run", settings_for_run(tmp_path / "run", settings))
    with pytest.raises(ValueError, match="holds a run with sampler='tpe', not 'random'"):
        settings_for_run(tmp_path / "run", RunSettings(**{**settings.__dict__, "sampler": "random"}))
    assert settings_for_run(tmp_path / "run", RunSettings(**{**settings.__dict__, "trials": 5})).study_name


def test_the_progress_display_counts_trials_in_the_state_they_are_entering(tmp_path):
    """Ray calls the callbacks before it changes a trial's state: a trial starting is counted as
    running, a trial ending as completed (its record) or pruned (none), never as running."""
    from ray.tune.experiment import Trial

    from ppsearch.rundir import Assignment, ResultsTable, write_record
    from ppsearch.search.engine import RunClock, SessionStop, results_callback
    from ppsearch.search.progress import SessionProgress
    from ppsearch.search.study_searcher import ASSIGNMENT

    def trial(trial_id, status):
        name = trial_folder_name("abc".index(trial_id))
        config = {ASSIGNMENT: Assignment({"placement": "none"}, name, "searched", 0, name, "abc".index(trial_id))}
        made = Trial("search_trial", config=config, trial_id=trial_id, stub=True)
        made.set_status(status)
        return made

    write_record(tmp_path / "trials" / "00000", {"status": "completed", "placement": "none", "val_clean_error": 0.5,
                                                 "val_mce": 1.0, "epochs_completed": 2})
    out = io.StringIO()
    progress = SessionProgress("search", 3, ("clean_error", "mce"), stream=out)
    callback = results_callback(ResultsTable(tmp_path), progress, clock=RunClock(), stop=SessionStop())
    a, b, c = trial("a", Trial.RUNNING), trial("b", Trial.RUNNING), trial("c", Trial.PENDING)
    callback.on_trial_complete(0, [a, b, c], a)
    callback.on_trial_start(0, [trial("a", Trial.TERMINATED), b, c], c)
    callback.on_trial_complete(0, [trial("a", Trial.TERMINATED), b, trial("c", Trial.RUNNING)], b)
    callback.on_trial_complete(0, [trial("a", Trial.TERMINATED), trial("b", Trial.TERMINATED), c], c)
    assert out.getvalue().splitlines() == [
        "  00000 completed  clean_error 0.5000  mce 1.0000  (joins the validation front: 1)",
        # a status line for the first end and the first start (then none for 30 s) and for the last end
        "search: 1/3 trials ended, 1 running | 0m00s elapsed, about 0m00s left | validation front 1 | "
        "1 completed, 0 pruned, 0 failed",
        "search: 1/3 trials ended, 2 running | 0m00s elapsed, about 0m00s left | validation front 1 | "
        "1 completed, 0 pruned, 0 failed",
        "  00001 pruned",
        "  00002 pruned",
        "search: 3/3 trials ended, 0 running | 0m00s elapsed, done | validation front 1 | "
        "1 completed, 2 pruned, 0 failed"]


@pytest.mark.bad_input
def test_racing_confirmation_resumes_after_kill_9_without_losing_or_repeating_a_seed(tmp_path):
    """`--confirm-seeds auto`: rounds of one seed each for the configurations of undecided (front,
    paper) pairs. A driver killed in the middle of the rounds is continued by the same command,
    which replays the decisions from the records and runs exactly the seeds still missing."""
    space = tiny_space(tmp_path).with_name("one-paper.yaml")
    space.write_text(textwrap.dedent(TINY_SPACE).replace("  pp: {placement: pp}\n", ""))
    run_dir = tmp_path / "run"
    command = _command(space, run_dir, 2, "--quiet", "--confirm-seeds", "auto", "--max-seeds", "4")
    table = _kill_9_and_resume(command, run_dir, records=5)  # the 3 search trials and two confirmations
    assert table["trial_id"].is_unique and (table["status"] == "completed").all()
    assert len(open_study(run_dir).trials) == 3  # confirmations are not study trials
    settings = read_settings(run_dir)
    assert (settings.confirm_seeds, settings.max_seeds) == ("auto", 4)
    front, papers = pairs_to_confirm(table, settings.objectives)
    assert front and papers == ["00000"], "the tiny search must put a searched configuration on the front"
    confirmations = table[table["config_id"] != table["trial_id"]]
    assert confirmations["seed"].max() >= 2  # the race went on past its first round
    for config, seeds in confirmations.groupby("config_id")["seed"]:
        assert sorted(seeds) == list(range(1, len(seeds) + 1)), config  # one seed a round, none skipped
        assert len(seeds) <= 3  # at most --max-seeds, the search's own seed included
    assert next_confirmations(table, settings) == []  # nothing left: every pair decided or at its maximum


def test_a_runs_settings_enter_each_module_at_most_twice(tmp_path, local_ray, capsys):
    """Following a search's settings from the command line (the parsed arguments, then the run's
    settings and what carries them: the prepared run, the trials' context) through every call that
    receives them, a module is entered at most twice: each does its part in one go, and the data
    flows down, not back and forth."""
    import argparse

    from ppsearch.cli import main
    from ppsearch.search.engine import PreparedRun
    from ppsearch.search.execution import TrialContext

    carriers = (argparse.Namespace, RunSettings, PreparedRun, TrialContext)
    entered: list[str] = []

    def profile(frame, event, arg):
        module = frame.f_globals.get("__name__", "")
        if event != "call" or not module.startswith("ppsearch") or frame.f_code.co_name == "__init__":
            return
        code = frame.f_code
        arguments = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        if any(isinstance(frame.f_locals.get(name), carriers) for name in arguments):
            if not entered or entered[-1] != module:
                entered.append(module)

    sys.setprofile(profile)
    try:
        code = main(["run", "--space", str(tiny_space(tmp_path)), "--budget", "smoke", "--trials", "0", "--scheduler",
                     "none", "--max-concurrent", "1", "--out", str(tmp_path / "run"), "--quiet"])
    finally:
        sys.setprofile(None)
    assert code == 0
    visits = {module: entered.count(module) for module in entered}
    assert {"ppsearch.cli.commands", "ppsearch.search.engine", "ppsearch.rundir", "ppsearch.training.trial"} <= set(visits)
    assert max(visits.values()) <= 2, " -> ".join(entered)
    # the run ends saying where its wall time went, phase by phase, the phases adding up to the total
    line = capsys.readouterr().out.splitlines()[-1]
    phases, total = re.fullmatch(r"phases: (.*); total ([\d.]+) s \(the first trial started [\d.]+ s in\)", line).groups()
    seconds = dict(re.fullmatch(r"(.+) ([\d.]+) s", part).groups() for part in phases.split(", "))
    assert list(seconds) == ["start-up", "checks", "Ray start", "study", "validation sets", "search", "test sets",
                             "test measurements", "confirmation", "summary"]
    assert sum(map(float, seconds.values())) == pytest.approx(float(total), abs=0.5)
