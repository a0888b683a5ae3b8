"""The run directory's contracts: one reader and writer of each file, atomic writes, status counts."""
import json

import pandas as pd
import pytest
from run_dirs import SETTINGS, write_run

from ppsearch.errors import UserError
from ppsearch.files import atomic_path, read_json, read_yaml, write_json
from ppsearch.rundir import (
    RunSettings,
    TrialStatus,
    front_origin,
    is_paper,
    origin_kind,
    paper_name,
    paper_origin,
    read_settings,
    status_counts,
    write_settings,
)


def test_an_interrupted_write_leaves_the_old_file_whole_and_no_partial(tmp_path):
    path = write_json(tmp_path / "state.json", {"epoch": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text('{"epoch": 2, "half')
            raise KeyboardInterrupt
    assert read_json(path) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_settings_round_trip_and_other_files_are_refused(tmp_path):
    write_settings(tmp_path, SETTINGS)
    assert read_settings(tmp_path) == SETTINGS and isinstance(read_settings(tmp_path).objectives, tuple)
    (tmp_path / "run.json").write_text(json.dumps({"objectives": ["clean_error"]}))
    with pytest.raises(UserError, match="run.json is not a ppsearch run file"):
        read_settings(tmp_path)
    (tmp_path / "run.json").write_text('{"space": "resnet-cifar", "data')
    with pytest.raises(UserError, match=r"run.json is not valid JSON: Unterminated string .* \(line 1, column 27\)"):
        read_settings(tmp_path)
    with pytest.raises(UserError, match="is not a `ppsearch run` directory"):
        read_settings(tmp_path / "elsewhere")


@pytest.mark.parametrize("field, value, message", [
    ("objectives", 3, "objectives must be tuple[str, ...], got 3"),
    ("trials", "10", "trials must be int, got '10'"),
    ("validation_fraction", True, "validation_fraction must be float, got True"),
    ("image_size", "big", "image_size must be int | None, got 'big'"),
])
@pytest.mark.bad_input
def test_a_run_file_with_a_value_of_the_wrong_type_is_named(tmp_path, capsys, field, value, message):
    from ppsearch.cli import main

    write_run(tmp_path / "run", [{"trial_id": "a", "origin": "searched", "status": "completed"}])
    raw = json.loads((tmp_path / "run" / "run.json").read_text())
    (tmp_path / "run" / "run.json").write_text(json.dumps({**raw, field: value}))
    for command in ("pick", "report"):
        assert main([command, str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"run.json: {message}: the file was edited or damaged" in err


@pytest.mark.bad_input
def test_yaml_errors_name_the_file_and_the_line(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("name: x\ndimensions:\n  placement: {choices: [none, pp}\n")
    with pytest.raises(UserError, match=r"space file .*space.yaml is not valid YAML at line 3"):
        read_yaml(path, "space file")


def test_origins_and_status_counts():
    assert paper_origin("resnet20-b1") == "paper:resnet20-b1" and paper_name("paper:resnet20-b1") == "resnet20-b1"
    assert is_paper("paper:x") and not is_paper("searched") and not is_paper(float("nan"))
    table = pd.DataFrame({"status": ["completed", "completed", "pruned", "running", "pending", "failed"]})
    assert status_counts(table) == "2 completed, 1 pruned, 1 failed, 1 running, 1 pending"
    assert status_counts(table.iloc[:0]) == "0 completed, 0 pruned, 0 failed, 0 running, 0 pending"
    assert TrialStatus("pruned") is TrialStatus.PRUNED and TrialStatus.PRUNED == "pruned"


def test_a_run_differs_from_another_by_name(tmp_path):
    other = RunSettings(**{**SETTINGS.__dict__, "sampler": "random", "trials": 9})
    assert SETTINGS.differences(other) == ["sampler"]
    write_run(tmp_path / "run", [{"trial_id": "a", "status": "completed"}])
    assert read_settings(tmp_path / "run").budget == "demo"


@pytest.mark.parametrize("dropped, message", [
    ("protocol", "was written before evaluation protocols existed"),
    ("validation_fraction", "was written before validation splits existed: its search selected on test images, so "
                            "its fronts cannot be reported as held-out results; start a new run"),
])
@pytest.mark.bad_input
def test_runs_from_before_a_contract_changed_are_refused_saying_why(tmp_path, dropped, message):
    write_run(tmp_path / "run", [{"trial_id": "a", "status": "completed"}])
    settings = json.loads((tmp_path / "run" / "run.json").read_text())
    del settings[dropped]
    (tmp_path / "run" / "run.json").write_text(json.dumps(settings))
    with pytest.raises(UserError, match=message):
        read_settings(tmp_path / "run")


def test_origins_say_how_a_configuration_came_into_a_run():
    assert [origin_kind(o) for o in ("paper:resnet20-b1", front_origin("resnet20", "00007"), "searched")] == \
        ["paper", "earlier front", "searched"]
    assert front_origin("resnet20", "00007") == "front:resnet20:00007"


_DRIVER_STOPPED_BETWEEN_WRITES = """
import sys
from pathlib import Path

from ppsearch.rundir import Assignment, ResultsTable, TrialStatus, write_record

run_dir = Path(sys.argv[1])
table = ResultsTable(run_dir)
table.write()
table.WRITE_SHARE = 1e-9  # the next write is far from due
write_record(run_dir / "trials" / "00001", {"status": "completed", "placement": "pp"})
table.ended(Assignment({"placement": "pp"}, "00001", "searched", 0, "00001", 1), TrialStatus.PRUNED)
table.write_due()
raise KeyboardInterrupt  # the driver stops before its session's last write
"""


def test_the_results_files_are_written_seldom_as_trials_end_yet_whole_when_a_driver_stops(tmp_path, monkeypatch):
    """Writing the files at every trial end would cost a run O(trials^2): a write that would take
    more than its share of the time since the last one waits for the next write, or for the
    driver's exit, interrupted or not; the table in memory is whole all along."""
    import subprocess
    import sys

    from ppsearch.rundir import Assignment, ResultsTable, read_table, write_record

    def ended(table, trial_id):
        write_record(tmp_path / "trials" / trial_id, {"status": "completed", "placement": "none", "val_mce": 1.0})
        table.ended(Assignment({"placement": "none"}, trial_id, "searched", 0, trial_id, int(trial_id)),
                    TrialStatus.PRUNED)
        table.write_due()

    table = ResultsTable(tmp_path)
    ended(table, "00000")  # the first write is due
    assert list(read_table(tmp_path)["trial_id"]) == ["00000"]
    monkeypatch.setattr(ResultsTable, "WRITE_SHARE", 1e-9)  # every later write far from due
    ended(table, "00001")
    assert list(read_table(tmp_path)["trial_id"]) == ["00000"]
    assert list(table.frame()["trial_id"]) == ["00000", "00001"]
    assert list(table.frame(["trial_id", "status", "val_clean_error"]).columns) == ["trial_id", "status"]
    table.write()  # a Tune session's end
    assert list(read_table(tmp_path)["trial_id"]) == ["00000", "00001"]

    stopped = subprocess.run([sys.executable, "-c", _DRIVER_STOPPED_BETWEEN_WRITES, str(tmp_path)],
                             capture_output=True, text=True)
    assert "KeyboardInterrupt" in stopped.stderr
    assert list(read_table(tmp_path)["trial_id"]) == ["00000", "00001"]
    assert read_table(tmp_path).set_index("trial_id").loc["00001", "placement"] == "pp"  # read from its record
