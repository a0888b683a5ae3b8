"""MLflow tracking (--mlflow) against a real MLflow tracking server on 127.0.0.1 (SQLite backend, a
temporary artifact folder): what a search sends, read back through MLflow's own client."""
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
from run_dirs import tiny_space
from test_search import _command

from ppsearch.cli import main
from ppsearch.errors import UserError
from ppsearch.rundir import has_test_values
from ppsearch.tracking import Tracking

SERVER_START_S = 180  # a loaded 2-core machine takes half a minute to start one


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """The URI of a real MLflow tracking server started for this module; it stops at the end. Without
    mlflow installed the tests are skipped, except in CI (CI=true: `make test` installs it)."""
    if importlib.util.find_spec("mlflow") is None:
        message = "mlflow is not installed: pip install 'ppsearch[mlflow]' (make test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must run the tracking tests)")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    with open(root / "server.log", "w") as log:
        # a session of its own: the server's workers stop with it
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                                   f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", str(root / "artifacts"),
                                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _answers(uri):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the MLflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(uri: str) -> bool:
    try:
        urllib.request.urlopen(f"{uri}/health", timeout=2).close()
        return True
    except OSError:
        return False


def test_a_search_tracks_every_trial_once_with_its_values_and_model(tmp_path, tracking_server):
    """Each trial (search trials and confirmation seeds, nested under their configuration's run) is
    one MLflow run of the experiment named after the run directory, with its configuration and budget
    as params, its origin, status, protocol and trial id as tags, its training loss per epoch, rung,
    validation and (for the reported ones) test values as metrics, and its model; the same command
    again adds no run and no value."""
    import mlflow

    space, run_dir = tiny_space(tmp_path), tmp_path / "run"
    # the papers' two configurations (no searched one: what is tracked is the same), and a seed more of each
    command = _command(space, run_dir, 0, "--quiet", "--confirm-seeds", "2", "--scheduler", "moasha",
                       "--mlflow", tracking_server, "--mlflow-artifacts")
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "View run" not in first.stdout  # MLflow's links stay out of ppsearch's output
    table = pd.read_parquet(run_dir / "results.parquet").set_index("trial_id")
    client = mlflow.MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name(str(run_dir.resolve()))
    runs = {run.data.tags["ppsearch.trial_id"]: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(table.index) and len(runs) == 4
    reported = has_test_values(table)
    for trial_id, row in table.iterrows():
        run = runs[trial_id]
        assert run.info.status == "FINISHED" and run.info.run_name == trial_id
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert (tags["ppsearch.origin"], tags["ppsearch.status"], tags["ppsearch.protocol"]) == \
            (row["origin"], "completed", "seed-paper")
        assert (params["placement"], params["budget"], params["epochs"], params["seed"]) == \
            (row["placement"], "smoke", "2", str(row["seed"]))
        losses = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in sorted(losses, key=lambda m: m.step)] == [1, 2]
        assert metrics["val_clean_error"] == pytest.approx(row["val_clean_error"])
        assert metrics["params"] == row["params"]
        assert (metrics.get("clean_error") is not None) == reported[trial_id]
        if reported[trial_id]:  # test values, measured after the search for a search trial
            assert metrics["clean_error"] == pytest.approx(row["clean_error"])
            assert metrics["ce/gaussian_noise"] == pytest.approx(row["ce/gaussian_noise"])
            assert metrics["error/gaussian_noise/1"] == pytest.approx(row["error/gaussian_noise/1"])
        if row["config_id"] == trial_id:  # a search trial: ranked at MO-ASHA's rung, epoch 1
            rung = client.get_metric_history(run.info.run_id, "rung_clean_error")
            assert [m.step for m in rung] == [1]
            assert "mlflow.parentRunId" not in tags
        else:
            assert tags["mlflow.parentRunId"] == runs[row["config_id"]].info.run_id
        assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["model.safetensors"]

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_id for run in rerun) == sorted(run.info.run_id for run in runs.values())
    for run in rerun:
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 2
        assert len(client.get_metric_history(run.info.run_id, "val_clean_error")) == 1


@pytest.mark.bad_input
@pytest.mark.parametrize("flags, message", [
    (["--mlflow", "http://127.0.0.1:{closed}"],
     "--mlflow http://127.0.0.1:{closed}: no tracking server answers there ([Errno 111] Connection refused); start one "
     "(mlflow server --host HOST --port PORT) or correct the URI"),
    (["--mlflow", "127.0.0.1:5000"],
     "--mlflow '127.0.0.1:5000': not a tracking URI; give the address of an MLflow tracking server (http://HOST:PORT) "
     "or an MLflow database ("),
    (["--mlflow-artifacts"], "--mlflow-artifacts: give --mlflow URI too (the models go to its tracking server)"),
])
def test_an_unreachable_or_malformed_tracking_uri_is_refused_before_anything_runs(tmp_path, capsys, flags, message):
    pytest.importorskip("mlflow")
    closed = _free_port()  # nothing listens on it once the probe is closed
    run_dir = tmp_path / "run"
    code = main(["run", "--space", str(tiny_space(tmp_path)), "--budget", "smoke", "--trials", "1", "--out", str(run_dir),
                 "--quiet", *(flag.format(closed=closed) for flag in flags)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("ppsearch: error: " + message.format(closed=closed)), err
    assert not run_dir.exists()


@pytest.mark.bad_input
def test_tracking_without_mlflow_installed_names_the_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "mlflow" else object())
    with pytest.raises(UserError, match=r"^--mlflow: MLflow is not installed; pip install 'ppsearch\[mlflow\]'$"):
        Tracking("http://127.0.0.1:5000").check()
