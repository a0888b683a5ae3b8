"""Training throughput of ppsearch's engine beside a standard torchvision training loop, and the wall
time of one `demo` trial.

1. ResNet-20 on Fashion-MNIST training images (RGB, 32x32), the seed paper's recipe (SGD Nesterov,
   batch 128), light augmentation (4-pixel pad + random crop + flip):
   * engine: ``ppsearch.training.trainer.fit`` (uint8 set on the device, batched augmentation, channels_last,
     bf16 autocast on GPUs);
   * baseline: a torchvision ``DataLoader`` over PIL images with per-image ``transforms.v2``
     (RandomCrop(32, 4), RandomHorizontalFlip, ToImage/ToDtype, Normalize), as in the usual CIFAR
     scripts, with 0 and with 2 worker processes; the faster of the two is the one compared.
   Rounds alternate engine and baselines; each round trains one epoch after a warm-up epoch; the
   figure is the median over rounds of images per second.
2. One `demo` trial (ResNet-20-b1, the heaviest paper configuration of the demo) as a search runs
   it: the run's -C/-P sets, then the trial from start to record, split into training, evaluation
   (validation and test, clean, -C and -P, and the sparsity pass) and the rest.

3. With ``--compile``: the demo trial eagerly and with ``torch.compile``, compile time included.

    python benchmarks/bench_train.py [--device cuda] [--images 2048] [--rounds 3] [--compile]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ppsearch import build_model
from ppsearch.data.preprocess import normalisation
from ppsearch.robustness.evaluate import Predictor, evaluate
from ppsearch.training.recipes import RECIPES
from ppsearch.training.trainer import fit
from ppsearch.training.trial import Split, TrialConfig, evaluation_sets, run_trial, trial_dataset

RECIPE = RECIPES["paper"]


class PilImages(Dataset):
    """What torchvision.datasets.CIFAR10 hands a training loop: one PIL image at a time through transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std) -> None:
        self.images, self.labels = images.numpy(), labels.tolist()
        self.transform = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToImage(),
                                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def baseline_epoch(model, loader, device: str) -> float:
    """One epoch of the usual loop; returns images per second."""
    optimizer = RECIPE.optimizer(model)
    model.train()
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.startswith("cuda"))
    seen, start = 0, time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    loss.item()
    return seen / (time.perf_counter() - start)


def engine_epoch(model, images, labels, mean, std, device: str) -> float:
    return fit(model, images, labels, RECIPE, epochs=1, augmentation="standard", mean=mean, std=std,
               seed=0, device=device)[0].images_per_second


def compiled(config: TrialConfig, data, device: str) -> None:
    """The same demo trial trained eagerly and with ``torch.compile`` (compile time included), and
    a trial's evaluation (validation and test sets) with an eager and a compiled model: whether
    compiling pays at this budget."""
    mean, std = normalisation(config.dataset, data.test_images.shape[-1])
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        sets = evaluation_sets(Path(tmp) / "sets", config, data, device=device, progress=False)
        for compile in (False, True):
            started = time.perf_counter()
            record = run_trial(config, Path(tmp) / f"trial-{compile}", sets, device=device, compile=compile)
            trial = time.perf_counter() - started
            torch.manual_seed(0)
            model = build_model(config.arch, in_chans=data.test_images.shape[-1], **config.design.to_dict())
            predictor = Predictor(torch.compile(model) if compile else model, mean, std, device)
            started = time.perf_counter()
            for split, (c_dir, p_dir) in zip(config.splits(data)[1:] + (Split(data.test_images, data.test_labels),),
                                             (sets.validation, sets.test)):
                evaluate(predictor, split.images, split.labels, c_source=f"official:{c_dir}",
                         p_source=f"official:{p_dir}", clean_images=config.eval_images, c_images=config.c_images,
                         p_images=config.p_images, protocol=config.protocol, progress=False)
            walls[compile] = (trial, record["train_seconds"], time.perf_counter() - started)
    (eager, eager_train, eager_eval), (comp, comp_train, comp_eval) = walls[False], walls[True]
    print(f"\n3. torch.compile, the same demo trial: eager {eager:.1f} s (training {eager_train:.1f} s), compiled "
          f"{comp:.1f} s (training {comp_train:.1f} s, compile time included): {comp / eager:.2f}x")
    print(f"   a trial's evaluation (validation and test): eager {eager_eval:.1f} s, compiled {comp_eval:.1f} s "
          f"(compile time included): {comp_eval / eager_eval:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="3. also measure torch.compile on the demo trial")
    args = parser.parse_args()
    device = args.device
    data = trial_dataset("fashion-mnist")
    images = data.train_images[:args.images].expand(-1, -1, -1, 3).contiguous()
    labels = data.train_labels[:args.images]
    mean, std = normalisation("fashion-mnist", 3)
    print(f"device {device}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")

    def model():
        torch.manual_seed(0)
        return build_model("resnet20", in_chans=3).to(device)

    loaders = {f"DataLoader, {w} workers": DataLoader(PilImages(images, labels, mean, std), batch_size=RECIPE.batch_size,
                                                      shuffle=True, drop_last=True, num_workers=w,
                                                      pin_memory=device.startswith("cuda"),
                                                      persistent_workers=w > 0)
               for w in (0, 2)}
    runs = {"engine": lambda m: engine_epoch(m, images, labels, mean, std, device),
            **{name: (lambda m, loader=loader: baseline_epoch(m, loader, device)) for name, loader in loaders.items()}}
    models = {name: model() for name in runs}
    for name, run in runs.items():  # warm-up epoch each
        run(models[name])
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            rates[name].append(run(models[name]))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print(f"\n1. ResNet-20 training, {args.images} images, batch {RECIPE.batch_size}, median of {args.rounds} epochs")
    for name, rate in medians.items():
        print(f"   {name:24s} {rate:8.0f} images/s   (rounds: {', '.join(f'{r:.0f}' for r in rates[name])})")
    best_baseline = max(v for k, v in medians.items() if k != "engine")
    target = 3.0 if device.startswith("cuda") else 1.2
    print(f"   engine / best baseline   {medians['engine'] / best_baseline:8.2f}x   (target >= {target}x)")
    print(f"   projected paper schedule (200 epochs x 50,000 images) with the engine: "
          f"{200 * 50_000 / medians['engine'] / 60:.1f} min")

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        # as a search runs it: validation images held out, measured on them and on the test split
        config = TrialConfig.create({"placement": "b1"}, dataset="fashion-mnist", budget="demo",
                                    validation_fraction=0.1)
        sets = evaluation_sets(Path(tmp) / "sets", config, data, device=device, progress=False)
        made_sets = time.perf_counter() - started
        record = run_trial(config, Path(tmp) / "trial", sets, device=device)
        trial = time.perf_counter() - started - made_sets
    train, evaluation, test = record["train_seconds"], record["eval_seconds"], record["test_eval_seconds"]
    print(f"\n2. one demo trial (ResNet-20-b1, {config.train_images} images x {config.epochs} epochs, "
          f"recipe {config.recipe}): sets {made_sets:.1f} s (once per run), then the trial {trial:.1f} s:")
    print(f"   training {train:.1f} s ({record['images_per_second']:.0f} images/s, {train / trial:.0%}), "
          f"evaluation on validation images and sparsity {evaluation:.1f} s ({evaluation / (train + evaluation):.0%} "
          f"of a search trial's compute; target <= 15%), the test split {test:.1f} s (reported configurations "
          f"only), the rest (model, FLOP count, records) {trial - train - evaluation - test:.1f} s")
    print(f"   clean error {record['clean_error']:.3f}, mCE {record['mce']:.3f}")
    if args.compile:
        compiled(config, data, device)
    print(f"   load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
