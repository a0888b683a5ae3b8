"""One trial: train one configuration under one budget and seed, measure it, return one flat record.

A trial lives in its own directory::

    <trial_dir>/checkpoint/      the latest training checkpoint (resumed from when present)
    <trial_dir>/model.safetensors the trained model, readable by `ppsearch eval`
    <trial_dir>/sparsity.csv      weight and response sparsity per convolution
    <trial_dir>/record.json       the record, written last: a trial with a record is done

The record's columns: the configuration (``CONFIG_COLUMNS``), ``status`` (completed | failed) and
``failure_reason``, ``clean_error``, ``mce``, ``relative_mce``, ``ce_normaliser``, ``mfr``,
``fr_normaliser``, ``corruption_error`` (unnormalised mean error over corruptions and severities),
``error/<corruption>/<severity>``, ``ce/<corruption>``, ``fp/<perturbation>``, ``params``,
``flops``, ``train_seconds``, ``eval_seconds``, ``images_per_second``, ``epochs_completed``,
``first_layer_weight_sparsity``, ``first_layer_response_sparsity``, ``trial_dir`` and
``finished_at`` (UTC).
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .augment import AUGMENTATIONS
from .budgets import get_budget
from .checkpoint import ModelSpec, save_model
from .data import Dataset, load_dataset
from .design import Design
from .evaluate import Evaluation, Predictor, evaluate
from .preprocess import normalisation
from .profile import count_flops
from .recipes import get_recipe
from .sparsity import sparsity_table
from .train import Checkpointing, EpochReport, NonFiniteLoss, fit

# What a trial trains: the search's dimensions plus architecture, augmentation and recipe.
MODEL_KEYS = ("arch", "augmentation", "recipe")
CONFIG_KEYS = MODEL_KEYS + tuple(f.name for f in dataclasses.fields(Design))
SPARSITY_IMAGES = 256


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    arch: str
    design: Design
    augmentation: str
    recipe: str
    dataset: str
    budget: str
    epochs: int
    train_images: int | None
    eval_images: int | None
    c_images: int | None
    p_images: int | None
    seed: int

    @classmethod
    def create(cls, config: Mapping[str, Any], *, dataset: str, budget: str, seed: int = 0,
               budget_overrides: Mapping[str, int | None] | None = None) -> TrialConfig:
        """A trial of ``config`` (keys from :data:`CONFIG_KEYS`; ``recipe`` defaults to the
        budget's) under the named ``budget``, some of whose sizes ``budget_overrides`` may change."""
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"unknown configuration key {unknown[0]!r}; allowed: {', '.join(CONFIG_KEYS)}")
        b = get_budget(budget, budget_overrides)
        recipe = config.get("recipe", b.recipe)
        get_recipe(recipe)
        augmentation = config.get("augmentation", "standard")
        if augmentation not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augmentation!r}; allowed: {', '.join(AUGMENTATIONS)}")
        design = Design.from_dict({k: v for k, v in config.items() if k not in MODEL_KEYS})
        return cls(config.get("arch", "resnet20"), design, augmentation, recipe, dataset, budget,
                   b.epochs, b.train_images, b.eval_images, b.c_images, b.p_images, seed)

    def to_dict(self) -> dict[str, Any]:
        """Flat: the design's fields beside the others."""
        flat = dataclasses.asdict(self)
        return {**{k: flat[k] for k in MODEL_KEYS}, **self.design.to_dict(),
                **{k: v for k, v in flat.items() if k not in MODEL_KEYS + ("design",)}}

    @property
    def set_images(self) -> int | None:
        """How many test images the run's generated -C/-P sets need."""
        if self.c_images is None or self.p_images is None:
            return None
        return max(self.c_images, self.p_images)


CONFIG_COLUMNS = tuple(TrialConfig.create({}, dataset="cifar10", budget="smoke").to_dict())


@functools.lru_cache(maxsize=2)
def trial_dataset(name: str, data_dir: str | None = None) -> Dataset:
    """Datasets are loaded once per process and shared by its trials."""
    return load_dataset(name, data_dir)


def run_trial(
    config: TrialConfig,
    trial_dir: str | Path,
    sets: tuple[Path, Path],
    *,
    data_dir: str | None = None,
    device: str = "cpu",
    compile: bool = False,
    on_epoch: Callable[[dict[str, Any], Predictor], None] | None = None,
) -> dict[str, Any]:
    """Train and measure ``config``; ``sets`` are the run's generated -C and -P folders.

    Resumes from the trial's checkpoint when there is one; returns the stored record without
    training when the trial already finished. ``on_epoch(epoch, predict)`` receives, after every
    epoch, the epoch's :class:`~ppsearch.train.EpochReport` fields plus the clean error on the
    budget's evaluation images and the checkpoint directory, and the model's predictor (for
    further measurements). A NaN/inf loss or running out of device memory ends the trial with
    status ``failed`` and the reason.
    """
    trial_dir = Path(trial_dir)
    record_path = trial_dir / "record.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if {k: record.get(k) for k in CONFIG_COLUMNS} != json.loads(json.dumps(config.to_dict())):
            raise ValueError(f"{trial_dir} holds a finished trial of another configuration")
        return record
    trial_dir.mkdir(parents=True, exist_ok=True)
    data = trial_dataset(config.dataset, data_dir)
    in_chans, num_classes = data.train_images.shape[-1], len(data.classes)
    mean, std = normalisation(config.dataset, in_chans)
    spec = ModelSpec(config.arch, config.design.to_dict(), in_chans, num_classes, config.dataset, mean, std)
    torch.manual_seed(config.seed)
    model = spec.build()
    record: dict[str, Any] = {**config.to_dict(), "status": "completed", "failure_reason": "",
                              "params": sum(p.numel() for p in model.parameters()),
                              "flops": count_flops(model, data.train_images.shape[1], in_chans)}
    test_images, test_labels = data.test_images, data.test_labels
    predict = Predictor(model, mean, std, device)

    def report_epoch(report: EpochReport, trained: torch.nn.Module) -> None:
        if on_epoch is not None:
            clean = (predict(test_images[:config.eval_images]) != test_labels[:config.eval_images]).double().mean().item()
            on_epoch({**dataclasses.asdict(report), "clean_error": clean, "checkpoint": str(trial_dir / "checkpoint")},
                     predict)

    history: list[EpochReport] = []
    try:
        history = fit(model, data.train_images[:config.train_images], data.train_labels[:config.train_images],
                      get_recipe(config.recipe), epochs=config.epochs, augmentation=config.augmentation,
                      mean=mean, std=std, seed=config.seed, device=device, compile=compile, on_epoch=report_epoch,
                      checkpointing=Checkpointing(trial_dir / "checkpoint", spec, config.to_dict()))
    except (NonFiniteLoss, torch.OutOfMemoryError) as error:
        record.update(status="failed", failure_reason=f"{type(error).__name__}: {str(error).splitlines()[0]}")

    if record["status"] == "completed":
        started = time.perf_counter()
        evaluation = evaluate(predict, test_images, test_labels, c_source=f"official:{sets[0]}",
                              p_source=f"official:{sets[1]}", clean_images=config.eval_images,
                              c_images=config.c_images, p_images=config.p_images, seed=config.seed, progress=False)
        record.update(_metrics(evaluation))
        sparsity = sparsity_table(model, test_images[:SPARSITY_IMAGES], mean, std, device)
        sparsity.to_csv(trial_dir / "sparsity.csv", index=False)
        record.update(first_layer_weight_sparsity=sparsity["weight_sparsity"].iloc[0],
                      first_layer_response_sparsity=sparsity["response_sparsity"].iloc[0],
                      eval_seconds=time.perf_counter() - started)
        save_model(trial_dir / "model.safetensors", model, spec)
    train_seconds = history[-1].train_seconds if history else 0.0
    record.update(epochs_completed=len(history), train_seconds=train_seconds,
                  images_per_second=sum(r.images for r in history) / train_seconds if train_seconds else 0.0,
                  trial_dir=str(trial_dir),
                  finished_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return write_record(trial_dir, record)


def write_record(trial_dir: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Store a trial's record (write, then rename: a record on disk is always whole)."""
    path = Path(trial_dir) / "record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("record.json.partial")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)
    return record


def _metrics(evaluation: Evaluation) -> dict[str, Any]:
    errors = evaluation.corruption_errors
    flat = {"clean_error": evaluation.clean_error, **evaluation.summary,
            "corruption_error": errors["error"].mean()}
    flat.update({f"error/{row.corruption}/{row.severity}": row.error for row in errors.itertuples()})
    flat.update({f"ce/{row.corruption}": row.ce for row in evaluation.ce.itertuples()})
    flat.update({f"fp/{name}": value for name, value in evaluation.flip_probabilities.items()})
    return flat
