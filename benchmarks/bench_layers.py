"""Training-step cost of push-pull placements on ResNet-20, as ratios to the plain model.

All models are measured side by side in one run: after warm-up, one training step of each model in
turn per round (so background load hits them alike), medians over rounds. "direct" (ppsearch's default)
computes the reference form, a second convolution with the upsampled pull kernel, with fused
elementwise work; "naive" rows are that form written plainly, as the published code does.

    python benchmarks/bench_layers.py [--device cuda] [--batch 128] [--rounds 15]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ppsearch import PushPull2d, build_model
from ppsearch.layers import UpsamplePushPull2d
from ppsearch.models.profile import count_flops

CONFIGS = {
    "plain": dict(),
    "pp upsample h=2": dict(placement="pp"),
    "pp minmax_avg a=3": dict(placement="pp", variant="minmax_avg", avg_kernel_size=3),
    "b1 upsample h=2 (direct, default)": dict(placement="b1"),
    "b1 upsample h=2 separable": dict(placement="b1", pull_impl="separable"),
    "b1 minmax_avg a=3": dict(placement="b1", variant="minmax_avg", avg_kernel_size=3),
    "pp upsample h=2 naive reference form": dict(placement="pp", pull_impl="naive"),
    "b1 upsample h=2 naive reference form": dict(placement="b1", pull_impl="naive"),
}


class NaivePushPull(nn.Module):
    """The reference form: two convolutions, the pull kernel made by an nn.Upsample module on
    every forward pass, separate relu / scale / subtract."""

    def __init__(self, layer: UpsamplePushPull2d) -> None:
        super().__init__()
        self.push = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                              layer.padding, bias=False)
        self.push.weight = layer.weight
        self.up = nn.Upsample(size=(layer.pull_kernel_size,) * 2, mode="bilinear", align_corners=True)
        self.pull_padding, self.alpha = layer.pull_padding, layer.alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pull = F.conv2d(x, -self.up(self.push.weight), None, self.push.stride, self.pull_padding)
        return F.relu(self.push(x)) - self.alpha * F.relu(pull)


def build(design: dict, device: str, channels_last: bool) -> torch.nn.Module:
    design = dict(design)
    impl = design.pop("pull_impl", None)
    model = build_model("resnet20", **design)
    for name, module in list(model.named_modules()):
        if isinstance(module, PushPull2d) and impl == "naive":
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, NaivePushPull(module))
        elif isinstance(module, PushPull2d) and impl:
            module.pull_impl = impl
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, device=args.device)
    y = torch.randint(0, 10, (args.batch,), device=args.device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    models = {name: build(design, args.device, args.channels_last) for name, design in CONFIGS.items()}
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True)
                  for name, m in models.items()}

    def step(name: str) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizers[name].zero_grad(set_to_none=True)
        F.cross_entropy(models[name](x), y).backward()
        optimizers[name].step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for name in models:
        for _ in range(args.warmup):
            step(name)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name in models:
            times[name].append(step(name))

    base = statistics.median(times["plain"])
    plain_flops = count_flops(build({}, "cpu", False), 32, 3)
    print(f"ResNet-20 training step, batch {args.batch}, device {args.device}"
          f"{' channels_last' if args.channels_last else ''}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds")
    print(f"{'model':42s} {'ms/step':>9s} {'time ratio':>11s} {'FLOP ratio':>11s}")
    for name, design in CONFIGS.items():
        median = statistics.median(times[name])
        flops = count_flops(build(design, "cpu", False), 32, 3)
        print(f"{name:42s} {median * 1e3:9.1f} {median / base:10.2f}x {flops / plain_flops:10.2f}x")


if __name__ == "__main__":
    main()
