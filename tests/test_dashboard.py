"""`ppsearch dashboard`: what it shows, that it follows a running search, and that it renders."""
import socket
import subprocess
import sys
import time
import urllib.request

from browser import dom, is_blank, needs_chromium, render
from run_dirs import trial_row, write_run

from ppsearch.cli import main
from ppsearch.reporting.dashboard import views


def _rows():
    return [trial_row("a1", "paper:resnet20", "none", 0.10, 1.0, 1.0), trial_row("b1", "paper:resnet20-pp", "pp", 0.11, 0.9, 0.9),
            trial_row("c1", "searched", "b1", 0.09, 0.8, 0.85), trial_row("d1", "searched", "b2", 0.2, 0.2, 0.2, status="pruned")]


def test_views_filter_by_dimension_and_follow_the_table(tmp_path):
    run = write_run(tmp_path / "run", _rows())
    status, figures, verdicts, front, _ = views(run, {})
    assert status.startswith("4 of 4 trials shown: 3 completed, 1 pruned") and "validation front of 1" in status
    assert len(figures) >= 5 and front["config_id"].tolist() == ["c1"]
    assert verdicts["front configuration"].tolist() == ["c1", "c1"]  # against each paper configuration
    assert "0 of 2 comparisons decided" in status
    status, _, _, front, _ = views(run, {"placement": ["none", "pp"]})
    assert status.startswith("2 of 4 trials shown") and sorted(front["config_id"]) == ["a1", "b1"]
    write_run(tmp_path / "run", _rows() + [trial_row("e1", "searched", "pp", 0.05, 0.5, 0.5)])  # a trial finishes meanwhile
    status, _, _, front, _ = views(run, {})
    assert status.startswith("5 of 5") and front["config_id"].tolist() == ["e1"]


def test_views_before_any_result(tmp_path):
    run = write_run(tmp_path / "run", _rows())
    (run / "results.parquet").unlink()
    assert views(run, {})[0] == "waiting for the first trial to finish ..."


def test_dashboard_needs_a_run_directory(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a `ppsearch run` directory" in err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_chromium
def test_the_live_dashboard_renders_and_refreshes(tmp_path):
    run = write_run(tmp_path / "run", _rows())
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "ppsearch", "dashboard", str(run), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(60):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
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
