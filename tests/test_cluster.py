"""A real two-node Ray cluster on 127.0.0.1 with Ray's token authentication: a head and a worker
node started with `ray start`, a smoke search joining them with --address, trials on both nodes.
Deselect with `-m "not cluster"`."""
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from run_dirs import tiny_space

pytestmark = pytest.mark.cluster
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_node(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`ray start ... --block` in a process group of its own, so that the node's processes can be
    stopped by the group it started (never `ray stop`, which would end every Ray on the machine)."""
    return subprocess.Popen([str(RAY), "start", *args, "--block", "--disable-usage-stats"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _stop(node: subprocess.Popen) -> None:
    try:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(node.pid, signal.SIGKILL)


def _wait_for_live_nodes(port: int, env: dict[str, str], count: int, nodes: list[subprocess.Popen]) -> None:
    """Return once the cluster's GCS counts ``count`` live nodes (asked by a driver of its own)."""
    probe = (f"import ray; ray.init(address='127.0.0.1:{port}', logging_level='ERROR'); "
             "print(sum(node['Alive'] for node in ray.nodes()))")
    deadline = time.monotonic() + 180
    while True:
        answer = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        if answer.stdout.split()[-1:] == [str(count)]:
            return
        assert all(node.poll() is None for node in nodes), "a node of the cluster has stopped"
        assert time.monotonic() < deadline, f"the cluster never had {count} live nodes: {answer.stderr[-2000:]}"
        time.sleep(2)


def test_a_search_on_a_two_node_cluster_with_token_authentication(tmp_path):
    port = _free_port()
    # the head generates nothing: every node and the driver are given the same token, as Ray
    # documents for clusters started by hand (RAY_AUTH_MODE=token plus RAY_AUTH_TOKEN)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    nodes = [_start_node(["--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                          "--include-dashboard=false"], env)]
    try:
        deadline = time.monotonic() + 120
        while True:  # wait for the head's GCS
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                assert nodes[0].poll() is None and time.monotonic() < deadline, nodes[0].stderr.read()[-2000:]
                time.sleep(1)
        nodes.append(_start_node([f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1"], env))
        run_dir = tmp_path / "run"
        command = [sys.executable, "-m", "ppsearch", "run", "--space", str(tiny_space(tmp_path)), "--budget", "smoke",
                   "--budget-set", "train_images=4000", "--trials", "2", "--scheduler", "none",
                   "--address", f"127.0.0.1:{port}", "--out", str(run_dir), "--quiet"]
        wrong_token = subprocess.run(command, env={**env, "RAY_AUTH_TOKEN": "not-the-token"}, capture_output=True,
                                     text=True, timeout=300)
        assert wrong_token.returncode != 0 and not (run_dir / "run.json").exists()
        _wait_for_live_nodes(port, env, 2, nodes)  # a search started sooner may place every trial on the head
        # trials long enough (4,000 images) that the head cannot finish them all, reusing its warm
        # actor, while the worker node's first actor is still importing torch on a loaded machine
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        table = pd.read_parquet(run_dir / "results.parquet")
        assert len(table) == 4 and (table["status"] == "completed").all()  # 2 papers + 2 searched
        assert table["node"].nunique() == 2, table[["trial_id", "node"]]  # both nodes ran trials
    finally:
        for node in reversed(nodes):
            _stop(node)
        pointer = Path("/tmp/ray/ray_current_cluster")  # where `ray start --head` said it runs: not any more
        if pointer.is_file() and pointer.read_text().strip().endswith(f":{port}"):
            pointer.unlink()
