"""The Ray a search runs on: this machine's own, or a cluster's; what a trial asks of a node.

Ray Tune reads its settings from the environment when it is imported, so they are set here, before
Ray is, by the one function that connects.
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import socket

from ..errors import UserError

# Ray Tune's environment for a ppsearch driver: no loggers of its own (the run directory holds the
# results), the classic output, epoch reports without the objectives, and Ctrl-C that interrupts the
# run (exit 130) instead of ending it as finished
_TUNE_ENVIRONMENT = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0",
                     "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1"}


@dataclasses.dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0: as many as the resources allow
    time_budget_s: float | None = None
    address: str | None = None


def check_address(address: str | None) -> None:
    """``auto``, nothing (a Ray of this run's own) or HOST:PORT of a Ray head that answers."""
    if not address or address == "auto":
        return
    if address.startswith("ray://"):
        raise UserError(f"--address {address}: Ray Client addresses are not supported; run ppsearch "
                        f"on the cluster with `ray job submit -- ppsearch run --address auto ...`")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r}: expected auto or HOST:PORT of the Ray head (GCS)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise UserError(f"--address {address}: no Ray cluster answers there ({error.strerror or error}); "
                        f"start one with `ray start --head` or correct the address") from None


def connect_ray(resources: Resources) -> dict[str, int]:
    """Start a local Ray or join ``resources.address``, and check that some node can run a trial
    with the resources asked for (else a trial would wait forever); returns how many trials each
    node (by id) can run at once."""
    for name, value in _TUNE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    import ray

    check_address(resources.address)
    if not ray.is_initialized():
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            # without --address, a Ray of this run's own, even where another is running on the machine
            ray.init(address=resources.address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
        except ConnectionError as error:
            raise UserError(f"--address {resources.address}: {str(error).splitlines()[0]}") from None
        finally:  # Ray's native handler aborts the process on SIGTERM; the caller's stops it cleanly
            signal.signal(signal.SIGTERM, sigterm)
    return trials_per_node({node["NodeID"]: node["Resources"] for node in ray.nodes() if node["Alive"]}, resources)


def trials_per_node(nodes: dict[str, dict[str, float]], resources: Resources) -> dict[str, int]:
    """How many trials each node (id -> its resources) can run at once; a one-line error when none
    can run one."""
    def fitting(node: dict[str, float]) -> float:
        return min(node.get("CPU", 0) // resources.cpus_per_trial,
                   node.get("GPU", 0) // resources.gpus_per_trial if resources.gpus_per_trial else math.inf)

    cap = resources.max_concurrent or math.inf
    fits = {node_id: int(min(n, cap)) for node_id, node in nodes.items() if (n := fitting(node)) >= 1}
    if not fits:
        largest = max(nodes.values(), key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        raise UserError(f"no node of the Ray cluster can run a trial with {resources.cpus_per_trial:g} CPUs and "
                        f"{resources.gpus_per_trial:g} GPUs (the largest has {largest.get('CPU', 0):g} CPUs and "
                        f"{largest.get('GPU', 0):g} GPUs); lower --cpus-per-trial/--gpus-per-trial or add nodes")
    return fits
