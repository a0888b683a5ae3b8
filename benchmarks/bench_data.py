"""Streaming data: images/s of ppsearch's streaming path beside a plain torchvision loop.

On a generated ImageNet-layout JPEG tree (assorted sizes around ImageNet's typical 500x375), one
epoch of training batches at 224x224 through:

* ``streaming``: what ``fit`` runs for a streamed dataset: ``epoch_batches`` over ``ImageFiles``
  (a seeded order, DataLoader workers decoding whole batches, the loader plan of the memory budget);
* ``ImageFolder``: ``torchvision.datasets.ImageFolder`` with Resize(256) + CenterCrop(224) +
  PILToTensor per image and a shuffled ``DataLoader`` (default collation), the usual script;
* ``Ray Data`` (when Ray is installed): ``ray.data.read_images`` of the same files, the same resize
  and crop per image in ``map``, ``iter_torch_batches``, on a local Ray of as many CPUs as workers
  (started before timing); files in a seeded shuffled order;

with the same worker count and batch size, alternated, median of repeats, the load average printed
with every figure (a figure taken under load is not a result).

    python benchmarks/bench_data.py [--images 1024] [--workers 2] [--batch 64] [--repeats 3]
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms.v2 as T
from PIL import Image
from torch.utils.data import DataLoader

from ppsearch.data.datasets import load_dataset
from ppsearch.data.streaming import DataAccess, epoch_batches

SIZE = 224


def write_tree(root: Path, images: int, classes: int = 8) -> None:
    """``images`` JPEGs over ``classes`` wnid folders, one in 16 of each class in val/."""
    rng = np.random.default_rng(0)
    for i in range(images):
        split = "val" if (i // classes) % 16 == 0 else "train"
        folder = root / split / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        h, w = int(rng.integers(300, 450)), int(rng.integers(400, 550))
        # smooth content plus noise: JPEG sizes near real photographs' (~100 kB)
        base = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 55, h)[:, None, None]
        pixels = (base + rng.normal(0, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.JPEG", quality=90)


def streaming_epoch(data, batch: int, workers: int, epoch: int) -> int:
    order = torch.randperm(len(data.train_labels), generator=torch.Generator().manual_seed(epoch))
    steps = len(order) // batch
    seen = 0
    for x, _, _ in epoch_batches(data.train_images, data.train_labels, order, batch, steps, torch.device("cpu"),
                                 workers=workers):
        seen += x.shape[0]
    return seen


def image_folder_epoch(root: Path, batch: int, workers: int, epoch: int) -> int:
    transform = T.Compose([T.Resize(256), T.CenterCrop(SIZE), T.PILToTensor()])
    folder = torchvision.datasets.ImageFolder(str(root / "train"), transform=transform)
    loader = DataLoader(folder, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(epoch))
    return sum(x.shape[0] for x, _ in loader)


def _crop(row: dict) -> dict:
    image = T.functional.resize(Image.fromarray(row["image"]), [256])
    return {"image": np.asarray(T.functional.center_crop(image, [SIZE, SIZE]))}


def ray_data_epoch(paths: list[str], batch: int, epoch: int) -> int:
    import ray.data
    from ray.data import FileShuffleConfig

    dataset = ray.data.read_images(paths, mode="RGB", shuffle=FileShuffleConfig(seed=epoch)).map(_crop)
    return sum(len(b["image"]) for b in dataset.iter_torch_batches(batch_size=batch, drop_last=True, device="cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        write_tree(root, args.images)
        print(f"wrote {args.images} JPEGs in {time.perf_counter() - started:.1f} s; {args.workers} workers, "
              f"batch {args.batch}, {SIZE}x{SIZE}, {os.cpu_count()} cores", flush=True)
        data = load_dataset("imagenet", root, access=DataAccess(stream="always"))
        runs = {"streaming (ppsearch)": lambda e: streaming_epoch(data, args.batch, args.workers, e),
                "ImageFolder + DataLoader": lambda e: image_folder_epoch(root, args.batch, args.workers, e)}
        try:
            import ray
            import ray.data  # configures Ray Data's logging, quietened below
        except ImportError:
            print("Ray Data: skipped (Ray is not installed here)")
        else:
            ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-epoch execution lines
            runs["Ray Data"] = lambda e: ray_data_epoch(data.train_images.paths, args.batch, e)
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for epoch in range(args.repeats + 1):  # the first round warms the page cache and is not counted
            for name, run in runs.items():
                load = os.getloadavg()[0]
                started = time.perf_counter()
                images = run(epoch)
                rate = images / (time.perf_counter() - started)
                if epoch:
                    rates[name].append(rate)
                print(f"  round {epoch}{' (warm-up)' if not epoch else ''}  {name:26s} {rate:7.1f} images/s  "
                      f"load average {load:.2f}", flush=True)
        medians = {name: statistics.median(values) for name, values in rates.items()}
        for name, value in medians.items():
            print(f"{name:26s} median {value:7.1f} images/s")
        streaming = medians.pop("streaming (ppsearch)")
        for name, value in medians.items():
            print(f"streaming / {name}: {streaming / value:.2f}x (target >= 1)")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
