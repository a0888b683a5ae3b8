"""What a design costs at inference, measured: the latency of one forward pass.

Measured as the model is run by a backend (``rundir.LatencyBackend``): eager torch, as ppsearch trains and
evaluates (eval mode, ``torch.inference_mode``, so that push-pull layers derive their pull kernels
once and reuse them, and channels-last memory), or ONNX Runtime, running the model exported as
``ppsearch export`` writes it, as a deployment serves it. Either runs a batch of ``batch`` zero
images after warm-up; the median of repeated timings is the latency, and the interquartile range
beside it says how noisy the machine was (a shared machine is noisy, so the spread is kept, never
hidden). Both backends are timed by the same code: a backend only supplies one timed pass.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserError
from ..files import read_json, write_json
from ..rundir import LatencyBackend
from .export import EXPORTER_PACKAGES, INSTALL_HINT, missing_packages, onnx_model

WARMUP = 5  # passes before timing: allocator, kernel selection and the pull-kernel cache settle
TIMINGS = 25  # timed passes (the median and the quartiles of these)


@dataclasses.dataclass(frozen=True)
class LatencySetup:
    """What a latency is measured with: batches of ``batch`` images on ``device``, run by ``backend``."""

    batch: int = 1
    device: str = "cpu"
    backend: LatencyBackend = LatencyBackend.TORCH

    def __post_init__(self) -> None:
        # a backend named by a string (a command-line value, a run's settings) is checked here, once
        object.__setattr__(self, "backend", LatencyBackend(self.backend))


@dataclasses.dataclass(frozen=True)
class Latency:
    median_ms: float
    spread_ms: float  # interquartile range of the timings
    device: str  # what ran it: "cpu" or the GPU's name
    threads: int  # torch's intra-op threads, and ONNX Runtime's (CPU latency depends on them)
    batch: int
    backend: str  # a LatencyBackend's value

    def render(self) -> str:
        return (f"{self.median_ms:.3f} ms (interquartile range {self.spread_ms:.3f} ms) per batch of {self.batch} "
                f"on {self.device}, {self.threads} thread(s), {self.backend}")


def latency_problem(setup: LatencySetup) -> str | None:
    """Why ``setup`` cannot be measured here, or None when it can: checked before a model is
    exported or run (and, by a caller, before a search starts), so that the user is told in one
    line what to install or change."""
    if setup.backend != LatencyBackend.ONNXRUNTIME:
        return None
    missing = missing_packages(*EXPORTER_PACKAGES, "onnxruntime")
    if missing:
        return f"--latency-backend onnxruntime needs {', '.join(missing)}: {INSTALL_HINT}"
    device = torch.device(setup.device)
    if device.type not in ("cpu", "cuda"):
        return f"--latency-backend onnxruntime runs on cpu or cuda, not {device.type}"
    import onnxruntime

    offered = onnxruntime.get_available_providers()
    if device.type == "cuda" and "CUDAExecutionProvider" not in offered:
        return (f"--latency-backend onnxruntime on cuda needs onnxruntime-gpu "
                f"(this onnxruntime offers {', '.join(offered)} only)")
    return None


def timed_pass(model: nn.Module, *, in_chans: int, image_size: int, setup: LatencySetup) -> Callable[[], float]:
    """A function that runs one forward pass of ``model`` on ``setup.batch`` zero images of
    ``in_chans`` x ``image_size`` pixels, by ``setup.backend`` on ``setup.device``, and returns its
    milliseconds. The model is left in eval mode; eager torch moves it to the device, ONNX Runtime
    runs an export of it and leaves it where it is."""
    problem = latency_problem(setup)
    if problem:
        raise UserError(problem)
    shape = (setup.batch, in_chans, image_size, image_size)
    device = torch.device(setup.device)
    if setup.backend == LatencyBackend.ONNXRUNTIME:
        return _onnxruntime_pass(model, shape, device)
    return _torch_pass(model, shape, device)


def _torch_pass(model: nn.Module, shape: tuple[int, ...], device: torch.device) -> Callable[[], float]:
    """One timed pass in eager torch: eval and inference mode, channels-last."""
    model = model.eval().to(device, memory_format=torch.channels_last)
    images = torch.zeros(shape, device=device).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def timed() -> float:
        started = time.perf_counter()
        model(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) * 1000

    return timed


def _onnxruntime_pass(model: nn.Module, shape: tuple[int, ...], device: torch.device) -> Callable[[], float]:
    """One timed pass of ``model`` exported to ONNX and run by ONNX Runtime, with torch's thread
    count; on a GPU, the pass includes copying the images in and the logits out, as serving does."""
    import onnxruntime

    proto = onnx_model(model, in_chans=shape[1], image_size=shape[2])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # ONNX Runtime's threads spin between runs by default, taking the cores from whatever runs next
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if device.type == "cuda":
        provider, settings = "CUDAExecutionProvider", {"device_id": device.index or 0}
    else:
        provider, settings = "CPUExecutionProvider", {}
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=[(provider, settings)])
    if session.get_providers()[0] != provider:  # ONNX Runtime falls back to the CPU when CUDA will not load
        raise UserError(f"--latency-backend onnxruntime on {device} could not start {provider} "
                        f"(it runs on {', '.join(session.get_providers())}); see ONNX Runtime's log above")
    feed = {session.get_inputs()[0].name: np.zeros(shape, np.float32)}

    def timed() -> float:
        started = time.perf_counter()
        session.run(None, feed)
        return (time.perf_counter() - started) * 1000

    return timed


def measure_latency(model: nn.Module, *, in_chans: int, image_size: int, setup: LatencySetup) -> Latency:
    """The latency of ``model`` on batches of images of ``in_chans`` x ``image_size`` pixels, as
    ``setup`` says: :data:`TIMINGS` passes of :func:`timed_pass` after :data:`WARMUP`."""
    timed = timed_pass(model, in_chans=in_chans, image_size=image_size, setup=setup)
    for _ in range(WARMUP):
        timed()
    timings = [timed() for _ in range(TIMINGS)]
    quartiles = statistics.quantiles(timings, n=4)
    return Latency(statistics.median(timings), quartiles[2] - quartiles[0], device_name(torch.device(setup.device)),
                   torch.get_num_threads(), setup.batch, setup.backend.value)


def device_name(device: torch.device) -> str:
    """``cpu``, or the GPU's name: what a latency was measured on."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def cached_latency(model: nn.Module, identity: Mapping[str, Any], *, in_chans: int, image_size: int,
                   setup: LatencySetup, cache: Path | None) -> Latency:
    """:func:`measure_latency`, once per model ``identity`` (what decides the latency: architecture,
    design, sizes), batch, device, backend and thread count: kept in ``cache`` (a folder; None:
    measured every time), so that every seed of a configuration, and a resumed run, reuse one
    measurement."""
    problem = latency_problem(setup)  # before the device is named: a GPU ONNX Runtime cannot use may be absent
    if problem:
        raise UserError(problem)
    key = {**identity, "in_chans": in_chans, "image_size": image_size, "batch": setup.batch,
           "device": device_name(torch.device(setup.device)), "threads": torch.get_num_threads(),
           "backend": setup.backend.value}
    path = None if cache is None else cache / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}.json"
    if path is not None and path.is_file():
        return Latency(**read_json(path)["latency"])
    latency = measure_latency(model, in_chans=in_chans, image_size=image_size, setup=setup)
    if path is not None:
        write_json(path, {"key": key, "latency": dataclasses.asdict(latency)})
    return latency
