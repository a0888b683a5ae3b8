"""Inference latency of push-pull placements and pull sizes, as ratios to the plain model.

Each model is timed as ppsearch measures a trial's latency (``models.latency.timed_pass``: eval and
inference mode, channels-last, zero images) and side by side in one run: after warm-up, one pass
of each model in turn per round (so background load hits them alike), medians and interquartile
ranges over rounds. Beside eager torch, the same models exported to ONNX (``ppsearch export``) and
run by ONNX Runtime on the CPU with as many threads (not spinning between runs), as a deployment
would serve them (``timed_pass``'s onnxruntime backend, what ``--latency-backend onnxruntime``
measures); each runtime's models are interleaved among themselves. The load
average is printed before and after; a figure taken under load is not a result.

    python benchmarks/bench_cost.py [--device cuda] [--rounds 25]
"""
from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import torch

from ppsearch import build_model
from ppsearch.models.latency import WARMUP, LatencySetup, timed_pass
from ppsearch.models.profile import count_flops
from ppsearch.rundir import LatencyBackend

RESNET20 = {
    "plain": {},
    "pp": {"placement": "pp"},
    "b1": {"placement": "b1"},
    "b2": {"placement": "b2"},
    "all": {"placement": "all"},
    **{f"pp pull {k}x{k}": {"placement": "pp", "pull_kernel_size": k} for k in (3, 5, 7, 9)},
    **{f"b1 pull {k}x{k}": {"placement": "b1", "pull_kernel_size": k} for k in (3, 5, 7, 9)},
}
RESNET50 = {"plain": {}, "pp": {"placement": "pp"}, "b1": {"placement": "b1"}}
# Strisciuglio et al.: ResNet-50 on a V100, ImageNet, a batch of 256 (seconds): training 0.78 / 0.85 / 0.95,
# inference 0.66 / 0.67 / 0.63 for plain / pp / b1
PAPER_INFERENCE = {"plain": 1.0, "pp": 0.67 / 0.66, "b1": 0.63 / 0.66}


def _interleaved(passes: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each pass's timings: after warm-up, one pass of each in turn per round."""
    for timed in passes.values():
        for _ in range(WARMUP):
            timed()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(rounds):
        for name, timed in passes.items():
            times[name].append(timed())
    return times


def compare(arch: str, designs: dict[str, dict], image_size: int, batch: int, rounds: int, device: str) -> None:
    models = {name: build_model(arch, **design) for name, design in designs.items()}
    flops = {name: count_flops(model, image_size, 3) for name, model in models.items()}
    eager, served = LatencySetup(batch, device), LatencySetup(batch, "cpu", LatencyBackend.ONNXRUNTIME)
    # exported before eager torch moves the models to the device: ONNX Runtime serves them on the CPU
    served_passes = {f"{name} [onnxruntime]": timed_pass(model, in_chans=3, image_size=image_size, setup=served)
                     for name, model in models.items()}
    torch_passes = {name: timed_pass(model, in_chans=3, image_size=image_size, setup=eager)
                    for name, model in models.items()}
    load = os.getloadavg()[0]
    # each backend's models interleaved among themselves: the two runtimes' thread pools never compete
    times = {**_interleaved(torch_passes, rounds), **_interleaved(served_passes, rounds)}
    print(f"\n{arch} at {image_size}x{image_size}, batch {batch}, {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {rounds} interleaved rounds; load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    paper = arch == "resnet50"
    print(f"{'design':28s} {'ms/pass':>9s} {'IQR ms':>8s} {'latency ratio':>14s} {'FLOP ratio':>11s}"
          + (f" {'paper (V100, batch 256)':>24s}" if paper else ""))
    for name, timings in times.items():
        design = name.removesuffix(" [onnxruntime]")
        base = statistics.median(times[name.replace(design, "plain", 1)])  # each backend against its own plain
        quartiles = statistics.quantiles(timings, n=4)
        median = statistics.median(timings)
        line = (f"{name:28s} {median:9.2f} {quartiles[2] - quartiles[0]:8.2f} {median / base:13.2f}x "
                f"{flops[design] / flops['plain']:10.2f}x")
        print(line + (f" {PAPER_INFERENCE[design]:23.2f}x" if paper else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    for batch in (1, 64):
        compare("resnet20", RESNET20, 32, batch, args.rounds, args.device)
    compare("resnet50", RESNET50, 224, 1, max(5, args.rounds // 3), args.device)


if __name__ == "__main__":
    main()
