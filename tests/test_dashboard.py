"""`ppsearch dashboard`: what it shows, that it follows a running search, and that it renders."""
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from browser import dom, is_blank, needs_chromium, render
from run_dirs import trial_row, write_run

from ppsearch.cli import main
from ppsearch.reporting.dashboard import views


def _rows():
    return [trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0), trial_row("b1", "paper:resnet20-pp", "pp", 0.11, 0.9, 0.9),
            trial_row("c1", "searched", "b1", 0.09, 0.8, 0.85), trial_row("d1", "searched", "b2", 0.2, 0.2, 0.2, status="pruned")]


def test_views_filter_by_dimension_and_follow_the_table(tmp_path):
    run = write_run(tmp_path / "run", _rows())
    view = views(run, {})
    assert view.status.startswith("4 of 4 trials shown: 3 completed, 1 pruned") and "validation front of 1" in view.status
    assert len(view.figures) >= 5 and view.front["config_id"].tolist() == ["c1"]
    assert view.verdicts["front configuration"].tolist() == ["c1", "c1"]  # against each paper configuration
    assert "0 of 2 comparisons decided" in view.status and view.failures.empty
    view = views(run, {"placement": ["none", "pp"]})
    assert view.status.startswith("2 of 4 trials shown") and sorted(view.front["config_id"]) == ["a1", "b1"]
    write_run(tmp_path / "run", _rows() + [trial_row("e1", "searched", "pp", 0.05, 0.5, 0.5)])  # a trial finishes meanwhile
    view = views(run, {})
    assert view.status.startswith("5 of 5") and view.front["config_id"].tolist() == ["e1"]


def _unmeasured(trial_id, status, reason=None):
    """A trial's row as the search writes it before the trial is measured (failed, or still running):
    its configuration and identity, no metric columns."""
    row = trial_row(trial_id, "searched", "pp", 0, 0, 0, status=status)
    identity = ("trial_id", "config_id", "origin", "status", "arch", "placement", "antialias", "seed")
    return {**{key: row[key] for key in identity}, "epochs_completed": 0,
            **({"failure_reason": reason} if reason else {})}


FAILED = [_unmeasured("a1", "failed", "CUDA out of memory"), _unmeasured("b1", "failed", "NaN loss at epoch 2")]


@pytest.mark.parametrize("rows, status, failures", [
    (None, "no trial has ended yet: no completed trial yet", []),  # no results table before a trial ends
    ([_unmeasured("a1", "running"), _unmeasured("b1", "pending")],
     "2 of 2 trials shown: 0 completed, 0 pruned, 0 failed, 1 running, 1 pending; no completed trial yet", []),
    (FAILED, "2 of 2 trials shown: 0 completed, 0 pruned, 2 failed, 0 running, 0 pending; no completed trial yet",
     ["CUDA out of memory", "NaN loss at epoch 2"]),
])
def test_views_before_a_completed_trial_show_the_runs_state(tmp_path, rows, status, failures):
    run = write_run(tmp_path / "run", rows or _rows())
    if rows is None:
        (run / "results.parquet").unlink()
    view = views(run, {})
    assert view.status == status and view.figures == [] and view.front is None and view.verdicts is None
    assert list(view.failures.get("failure_reason", [])) == failures


def test_while_searching_the_views_are_those_of_validation_values(tmp_path):
    """During a search the trials have validation values only (the test split is measured for the
    reported configurations when it ends): the dashboard shows what the search tried and says so."""
    searching = [{k: v for k, v in row.items() if not (k in ("clean_error", "mce", "mfr", "relative_mce")
                                                       or k.startswith(("ce/", "fp/")))} for row in _rows()]
    view = views(write_run(tmp_path / "run", searching), {})
    assert view.status == ("4 of 4 trials shown: 3 completed, 1 pruned, 0 failed, 0 running, 0 pending; searching: "
                           "every trial is measured on validation images; the test values of the validation front's "
                           "and the papers' configurations are measured when the search ends")
    titles = [figure.layout.title.text for figure in view.figures]
    assert titles and all("validation" in title for title in titles) and view.front is None


def test_dashboard_needs_a_run_directory(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a `ppsearch run` directory" in err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(run, log):
    """A dashboard of ``run`` in its own process, once it answers (its stderr, the server's log, in
    the file ``log``); and its port and address."""
    port = _free_port()
    # Ctrl-C reaches a command started from a terminal with SIGINT at its default; a suite started in
    # the background of a non-interactive shell passes SIGINT on ignored, so the child resets it
    with open(log, "w") as stderr:
        server = subprocess.Popen([sys.executable, "-m", "ppsearch", "dashboard", str(run), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=stderr,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = f"http://127.0.0.1:{port}/"
    for _ in range(60):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    return server, port, url


@pytest.mark.parametrize("sent, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
@pytest.mark.bad_input
def test_a_stopped_dashboard_exits_as_interrupted(tmp_path, sent, code):
    server, _, url = _serve(write_run(tmp_path / "run", _rows()), tmp_path / "server.log")
    try:
        assert urllib.request.urlopen(url, timeout=5).status == 200
        server.send_signal(sent)
        server.wait(timeout=30)
    finally:
        server.kill()
    err = (tmp_path / "server.log").read_text()
    assert server.returncode == code, err[-2000:]
    assert f"ppsearch: interrupted ({sent.name})" in err and "Traceback" not in err


@needs_chromium
@pytest.mark.bad_input
def test_the_dashboard_of_a_run_whose_trials_all_failed_shows_why(tmp_path):
    server, _, url = _serve(write_run(tmp_path / "run", FAILED), tmp_path / "server.log")
    try:
        page = dom(url, 15000)
        assert "0 completed, 0 pruned, 2 failed, 0 running, 0 pending; no completed trial yet" in page
        assert "failed trials" in page and "CUDA out of memory" in page and "NaN loss at epoch 2" in page
        assert render(url, tmp_path / "failed.png", 15000) == []
        assert not is_blank(tmp_path / "failed.png")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert '" 500 -' not in (tmp_path / "server.log").read_text()  # every refresh answered


@needs_chromium
def test_the_live_dashboard_renders_and_refreshes(tmp_path):
    run = write_run(tmp_path / "run", _rows())
    server, port, url = _serve(run, tmp_path / "server.log")
    try:
        page = dom(url, 15000)
        assert "4 of 4 trials shown" in page and page.count("js-plotly-plot") >= 5
        assert render(url, tmp_path / "dashboard.png", 15000) == []
        assert not is_blank(tmp_path / "dashboard.png")
        write_run(tmp_path / "run", _rows() + [trial_row("e1", "searched", "pp", 0.05, 0.5, 0.5)])
        assert "5 of 5 trials shown" in dom(url, 15000)
        # the port is now taken: a second dashboard says so in one line
        second = subprocess.run([sys.executable, "-m", "ppsearch", "dashboard", str(run), "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and second.stderr.count("\n") == 1
        assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in second.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
