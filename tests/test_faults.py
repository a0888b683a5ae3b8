"""Faults of the environment and of a run's own files: a full or read-only file system, a changed
space, a damaged table or journal, a run whose every trial fails. Nothing is lost, nothing is
recorded as a result that is not one, and every stop says why in one line.

The file-system faults are real: a small tmpfs (or one remounted read-only) mounted inside the run
directory, which needs the permission to mount (root, as on the CI machine)."""
import subprocess
import sys

import optuna
import pandas as pd
import pytest
from run_dirs import tiny_settings, tiny_space
from test_search import _assert_complete, _command

from ppsearch.errors import UserError
from ppsearch.rundir import JOURNAL_FILE, open_study, read_table, repair_journal

pytestmark = pytest.mark.bad_input


@pytest.fixture
def mount(tmp_path):
    """Mount a tmpfs with the given options at a folder (made if missing); unmounted at the end."""
    mounted = []

    def mount_at(folder, options):
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
        mounted.append(folder)

    yield mount_at
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _run(command):
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_a_trial_on_a_full_disk_stops_the_run_and_is_resumed_once_space_is_freed(tmp_path, mount):
    """The trials' folder fills up: the run stops with one line naming the path and the cause,
    exit 2, nothing recorded as failed; once freed, the same command completes."""
    space, run_dir = tiny_space(tmp_path), tmp_path / "run"
    mount(run_dir / "trials", "size=64k")
    stopped = _run(_command(space, run_dir, 1, "--quiet"))
    assert stopped.returncode == 2, stopped.stderr[-2000:]
    line = stopped.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ppsearch: error: cannot write {run_dir / 'trials'}") and "No space left on device" in line
    assert "Traceback" not in stopped.stderr and "Pareto front" not in stopped.stdout
    assert not open_study(run_dir).get_trials(states=(optuna.trial.TrialState.FAIL,))  # a full disk is not the trial's result

    subprocess.run(["umount", "-l", str(run_dir / "trials")], check=True)
    resumed = _run(_command(space, run_dir, 1, "--quiet"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_complete(run_dir, trials=1)


def test_a_read_only_disk_while_the_sets_are_made_is_one_line_and_the_run_continues_once_writable(tmp_path, mount):
    """The driver's own writes (the -C/-P sets) on a read-only file system: one line, exit 2; once
    it is writable again, the same command completes."""
    space, run_dir = tiny_space(tmp_path), tmp_path / "run"
    mount(run_dir / "sets", "size=64m,ro")
    stopped = _run(_command(space, run_dir, 0, "--quiet"))
    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
    line = stopped.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ppsearch: error: cannot write {run_dir / 'sets'}") and "Read-only file system" in line
    subprocess.run(["mount", "-o", "remount,rw", str(run_dir / "sets")], check=True)
    resumed = _run(_command(space, run_dir, 0, "--quiet"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_complete(run_dir, trials=0)


def test_a_search_whose_every_trial_failed_exits_non_zero(tmp_path):
    space = tiny_space(tmp_path).read_text().replace("  plain: {placement: none}\n  pp: {placement: pp}\n",
                                                     "  exploding: {placement: pp, alpha: 1.0e+38}\n")
    (tmp_path / "failing.yaml").write_text(space)
    ended = _run(_command(tmp_path / "failing.yaml", tmp_path / "run", 0))
    assert ended.returncode == 1, ended.stderr[-2000:]
    assert ended.stderr.strip().splitlines()[-1] == "ppsearch: every trial of the search failed (1); their reasons " \
                                                    "are listed above"
    assert "failed: 00000 (paper:exploding): NonFiniteLoss" in ended.stdout


def test_a_damaged_record_is_named_before_ray_starts_and_a_changed_space_is_refused(tmp_path):
    space, run_dir = tiny_space(tmp_path), tmp_path / "run"
    assert _run(_command(space, run_dir, 0, "--quiet")).returncode == 0
    record = run_dir / "trials" / "00001" / "record.json"
    intact = record.read_text()
    record.write_text(intact[:40])
    refused = _run(_command(space, run_dir, 0, "--quiet"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]
    assert f"ppsearch: error: {record} is not valid JSON" in refused.stderr
    assert len(list((run_dir / "tune").iterdir())) == 1  # no Tune session of the refused run

    record.write_text(intact)
    space.write_text(space.read_text().replace("antialias: {choices: [none, rect2]}", "antialias: {choices: [none, tri3]}"))
    refused = _run(_command(space, run_dir, 1, "--quiet"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]
    assert (f"{run_dir} was started with another space: its trials sampled antialias from "
            f"CategoricalDistribution(choices=('none', 'rect2')), the space {space} now says "
            f"CategoricalDistribution(choices=('none', 'tri3')); restore the space or start a new run") in refused.stderr
    assert len(list((run_dir / "trials").iterdir())) == 2  # nothing trained


def test_trials_0_with_a_space_without_papers_is_refused_before_anything_is_written(tmp_path):
    space = tmp_path / "bare.yaml"
    space.write_text(tiny_space(tmp_path).read_text().split("paper_configs:")[0])
    refused = _run(_command(space, tmp_path / "run", 0))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]
    assert "--trials 0 with space tiny, which has no paper configurations: the run would train nothing" in refused.stderr
    assert not (tmp_path / "run").exists()


def test_a_damaged_results_table_is_rebuilt_from_the_records(tmp_path, capsys, local_ray):
    from ppsearch.search.engine import Resources, run_search

    run_dir = tmp_path / "run"
    table = run_search(run_dir, tiny_settings(tiny_space(tmp_path), trials=0), Resources(cpus_per_trial=1), quiet=True)
    path = run_dir / "results.parquet"
    path.write_bytes(path.read_bytes()[:100])  # truncated
    rebuilt = read_table(run_dir)
    assert f"ppsearch: rebuilt {path} from the trial records: it could not be read" in capsys.readouterr().err
    pd.testing.assert_frame_equal(rebuilt.sort_values("trial_id").reset_index(drop=True)[table.columns],
                                  table.sort_values("trial_id").reset_index(drop=True))
    assert len(pd.read_parquet(path)) == len(table)  # written back whole

    path.write_bytes(b"garbage")
    for record in run_dir.glob("trials/*/record.json"):
        record.unlink()
    with pytest.raises(UserError, match=f"{path} cannot be read .* and there are no trial records to rebuild it from"):
        read_table(run_dir)


def test_a_journal_damaged_before_its_last_record_is_named(tmp_path):
    journal = tmp_path / JOURNAL_FILE
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(storage=storage, study_name="s").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:3], b'{"op_code": 4, "worker_id"\n', *lines[4:]]))
    with pytest.raises(UserError, match=f"{journal}: record 4 is damaged \\(not JSON\\), so the study cannot be read "
                                        f"past it; restore the file from a backup, or start a new run"):
        repair_journal(journal)


def test_report_names_a_damaged_table_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    (run_dir / "results.parquet").write_bytes(b"PAR1 not really")
    done = subprocess.run([sys.executable, "-m", "ppsearch", "report", str(run_dir)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"{run_dir / 'results.parquet'} cannot be read" in done.stderr


def test_a_run_whose_output_is_closed_stops_as_sigpipe_would_and_stays_resumable(tmp_path):
    """`ppsearch run ... | head -c 1`: the run stops (exit 141, no traceback), not training on with
    nothing to say, nor ending with exit 0 having trained nothing; what it started resumes."""
    space, run_dir = tiny_space(tmp_path), tmp_path / "run"
    driver = subprocess.Popen(_command(space, run_dir, 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert driver.stdout.read(1)
    driver.stdout.close()
    err = driver.stderr.read().decode()
    assert driver.wait(timeout=600) == 141, err[-2000:]
    assert "Traceback" not in err and "Error" not in err, err[-2000:]
    study = open_study(run_dir)
    assert len(study.trials) < 3 and not study.get_trials(states=(optuna.trial.TrialState.FAIL,))
