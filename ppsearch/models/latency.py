"""What a design costs at inference, measured: the latency of one forward pass.

Measured as the model is served: eval mode, ``torch.inference_mode`` (push-pull layers derive their
pull kernels once and reuse them), channels-last memory (the layout ppsearch trains and evaluates
in), a batch of ``batch`` images, after warm-up. The median of repeated timings is the latency; the
interquartile range beside it says how noisy the machine was (a shared machine is noisy, so the
spread is kept, never hidden).
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

import torch
import torch.nn as nn

from ..files import read_json, write_json

WARMUP = 5  # passes before timing: allocator, kernel selection and the pull-kernel cache settle
TIMINGS = 25  # timed passes (the median and the quartiles of these)


@dataclasses.dataclass(frozen=True)
class Latency:
    median_ms: float
    spread_ms: float  # interquartile range of the timings
    device: str  # what ran it: "cpu" or the GPU's name
    threads: int  # torch's intra-op threads (CPU latency depends on them)
    batch: int

    def render(self) -> str:
        return (f"{self.median_ms:.3f} ms (interquartile range {self.spread_ms:.3f} ms) per batch of {self.batch} "
                f"on {self.device}, {self.threads} thread(s)")


def timed_pass(model: nn.Module, *, in_chans: int, image_size: int, batch: int = 1,
               device: str | torch.device = "cpu") -> Callable[[], float]:
    """A function that runs one forward pass of ``model`` as it is served (eval mode, inference
    mode, channels-last, ``batch`` zero images on ``device``) and returns its milliseconds; the
    model is moved to ``device`` and left in eval mode."""
    device = torch.device(device)
    model = model.eval().to(device, memory_format=torch.channels_last)
    images = torch.zeros(batch, in_chans, image_size, image_size, device=device).contiguous(
        memory_format=torch.channels_last)

    @torch.inference_mode()
    def timed() -> float:
        started = time.perf_counter()
        model(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) * 1000

    return timed


def measure_latency(model: nn.Module, *, in_chans: int, image_size: int, batch: int = 1,
                    device: str | torch.device = "cpu") -> Latency:
    """The latency of ``model`` on ``batch`` images of ``in_chans`` x ``image_size`` pixels on
    ``device``: :data:`TIMINGS` passes of :func:`timed_pass` after :data:`WARMUP`."""
    device = torch.device(device)
    timed = timed_pass(model, in_chans=in_chans, image_size=image_size, batch=batch, device=device)
    for _ in range(WARMUP):
        timed()
    timings = [timed() for _ in range(TIMINGS)]
    quartiles = statistics.quantiles(timings, n=4)
    return Latency(statistics.median(timings), quartiles[2] - quartiles[0], device_name(device),
                   torch.get_num_threads(), batch)


def device_name(device: torch.device) -> str:
    """``cpu``, or the GPU's name: what a latency was measured on."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def cached_latency(model: nn.Module, identity: Mapping[str, Any], *, in_chans: int, image_size: int, batch: int,
                   device: str | torch.device, cache: Path | None) -> Latency:
    """:func:`measure_latency`, once per model ``identity`` (what decides the latency: architecture,
    design, sizes), batch, device and thread count: kept in ``cache`` (a folder; None: measured
    every time), so that every seed of a configuration, and a resumed run, reuse one measurement."""
    device = torch.device(device)
    key = {**identity, "in_chans": in_chans, "image_size": image_size, "batch": batch,
           "device": device_name(device),
           "threads": torch.get_num_threads()}
    path = None if cache is None else cache / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}.json"
    if path is not None and path.is_file():
        return Latency(**read_json(path)["latency"])
    latency = measure_latency(model, in_chans=in_chans, image_size=image_size, batch=batch, device=device)
    if path is not None:
        write_json(path, {"key": key, "latency": dataclasses.asdict(latency)})
    return latency
