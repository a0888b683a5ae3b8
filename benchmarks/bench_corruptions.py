"""Corruption / perturbation generation throughput, and evaluation throughput.

1. Images per second of every CIFAR-10-C corruption x severity on 32x32 images (real Fashion-MNIST
   test images as RGB), after warm-up, median of repeats; overall = all images / all time. The
   original per-image generator makes about 530 images/s per core on this machine class.
2. -P sequences per second per perturbation.
3. ResNet-20 evaluation: ppsearch's Predictor (uint8 batches on the device, inference mode,
   channels_last) beside a plain DataLoader loop with per-image ToTensor/Normalize, interleaved.

    python benchmarks/bench_corruptions.py [--device cuda] [--images 2048]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision.transforms as T
from torch.utils.data import DataLoader, Dataset

from ppsearch import build_model
from ppsearch.data.datasets import load_dataset
from ppsearch.data.preprocess import normalisation
from ppsearch.robustness.corruptions import ALL_CORRUPTIONS, SEVERITIES, corrupt
from ppsearch.robustness.evaluate import Predictor
from ppsearch.robustness.perturbations import ALL_PERTURBATIONS, perturb

REFERENCE_IMAGES_PER_S_PER_CORE = 530


def timed(fn, device: str, repeats: int) -> float:
    fn()  # warm-up (caches, lazily built operators)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class PerImage(Dataset):
    """What a typical evaluation script does: one PIL-free uint8 image at a time through transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std) -> None:
        self.images, self.labels = images.numpy(), labels
        self.transform = T.Compose([T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frost-dir", default=None)
    args = parser.parse_args()
    data = load_dataset("fashion-mnist", channels=3)
    images = data.test_images[:args.images].to(args.device)
    n = images.shape[0]
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{n} images of 32x32, median of {args.repeats} after warm-up")

    print("\n-C corruptions: images/s per severity 1..5")
    total_time = 0.0
    for name in ALL_CORRUPTIONS:
        seconds = [timed(lambda name=name, s=s: corrupt(images, name, s, frost_dir=args.frost_dir), args.device, args.repeats)
                   for s in SEVERITIES]
        total_time += sum(seconds)
        print(f"  {name:18s} " + " ".join(f"{n / t:9,.0f}" for t in seconds) + f"   all {len(seconds) * n / sum(seconds):9,.0f}")
    overall = n * len(ALL_CORRUPTIONS) * len(SEVERITIES) / total_time
    print(f"  overall (all 19 x 5): {overall:,.0f} images/s = {overall / REFERENCE_IMAGES_PER_S_PER_CORE:.1f}x the "
          f"reference generator's {REFERENCE_IMAGES_PER_S_PER_CORE} images/s per core "
          f"({overall / (2 * REFERENCE_IMAGES_PER_S_PER_CORE):.1f}x its two-core rate)")
    full_c = 10_000 * len(ALL_CORRUPTIONS) * len(SEVERITIES) / overall

    print("\n-P perturbations: sequences/s")
    p_time = 0.0
    for name in ALL_PERTURBATIONS:
        seconds = timed(lambda name=name: perturb(images, name), args.device, args.repeats)
        p_time += seconds
        print(f"  {name:18s} {n / seconds:9,.0f}")
    full_p = 10_000 * p_time / n
    print(f"\nestimated full CIFAR-10-C (19 x 5 x 10,000) + CIFAR-10-P (14 x 10,000 sequences) on {args.device}: "
          f"{full_c:,.0f} s + {full_p:,.0f} s = {full_c + full_p:,.0f} s")

    model = build_model("resnet20")
    mean, std = normalisation("fashion-mnist", 3)
    labels = data.test_labels[:n]
    predictor = Predictor(model, mean, std, args.device)
    loader = DataLoader(PerImage(data.test_images[:n], labels, mean, std), batch_size=256, num_workers=0)
    plain = build_model("resnet20").to(args.device).eval()
    plain.load_state_dict(model.state_dict())

    def dataloader_eval():
        with torch.no_grad():
            return torch.cat([plain(x.to(args.device)).argmax(1).cpu() for x, _ in loader])

    cpu_images = data.test_images[:n]
    seconds = {"ppsearch Predictor": [], "DataLoader + per-image transforms": []}
    predictor(cpu_images), dataloader_eval()  # warm-up both
    for _ in range(args.repeats):
        for label, fn in (("ppsearch Predictor", lambda: predictor(cpu_images)),
                          ("DataLoader + per-image transforms", dataloader_eval)):
            seconds[label].append(timed(fn, args.device, 1))
    print("\nResNet-20 evaluation, images/s")
    rates = {label: n / statistics.median(values) for label, values in seconds.items()}
    for label, rate in rates.items():
        print(f"  {label:36s} {rate:9,.0f}")
    print(f"  ratio {rates['ppsearch Predictor'] / rates['DataLoader + per-image transforms']:.2f}x")


if __name__ == "__main__":
    main()
