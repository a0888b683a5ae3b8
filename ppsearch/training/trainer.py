"""The fast trainer: the training set stays on the device as uint8, batches are gathered and
augmented there as whole tensors, and the step is plain SGD (airbench-style: no DataLoader, no
per-image Python). A training set too large for memory is streamed instead
(:mod:`ppsearch.data.streaming`): the same order and batches, decoded by loader workers.

Reproducibility: the model is initialised from ``seed`` by the caller; each epoch draws its data
order and augmentation from a generator seeded by (seed, epoch), and the learning rate is a
function of the step, so a run resumed from the checkpoint of epoch k repeats epochs k+1.. exactly.
On GPUs the step runs in bfloat16 autocast with channels_last tensors.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.preprocess import to_model_input
from ..data.streaming import Images, epoch_batches
from ..errors import UserError
from ..models.model_file import ModelSpec
from .augment import augment, augmix, random_crop_flip
from .checkpoint import load_training_checkpoint, read_training_state, save_training_checkpoint
from .recipes import Recipe

AUGMIX_JSD_WEIGHT = 12.0  # Hendrycks et al. 2020, Jensen-Shannon consistency weight
BATCH_NORM_SETTLED = 0.01  # the share of their initial values BatchNorm's running averages may still hold
SETTLING_IMAGES = 256  # at most this many training images recompute them where they have not settled


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite: the trial failed."""


@dataclasses.dataclass
class EpochReport:
    epoch: int  # epochs completed, 1-based
    epochs: int
    images: int  # images trained on this epoch
    train_loss: float
    train_error: float
    lr: float  # at the end of the epoch
    images_per_second: float  # this epoch's training throughput
    train_seconds: float  # total training time so far, over resumptions
    skipped_images: int = 0  # undecodable files skipped this epoch (streamed data, --bad-images skip)


@dataclasses.dataclass
class Checkpointing:
    """Where and as what the trainer checkpoints: ``identity`` is stored with every checkpoint and
    must match on resume (a checkpoint of another configuration is refused)."""

    directory: Path
    spec: ModelSpec
    identity: dict[str, Any]


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def fit(
    model: nn.Module,
    images: Images,
    labels: torch.Tensor,
    recipe: Recipe,
    *,
    epochs: int,
    augmentation: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    seed: int,
    device: str | torch.device = "cpu",
    checkpointing: Checkpointing | None = None,
    on_epoch: Callable[[EpochReport, nn.Module], None] | None = None,
    compile: bool = False,
) -> list[EpochReport]:
    """Train ``model`` on uint8 (N, H, W, C) ``images`` (in memory or streamed) for ``epochs`` epochs; resume from
    ``checkpointing.directory`` when it holds a checkpoint, and write one there after every epoch.
    ``on_epoch(report, model)`` runs after each epoch's checkpoint. Raises :class:`NonFiniteLoss`."""
    device = torch.device(device)
    model = model.to(device, memory_format=torch.channels_last).train()
    if isinstance(images, torch.Tensor):
        images = images.to(device)
    labels = labels.to(device)
    optimizer = recipe.optimizer(model)
    history = _resume(checkpointing, model, optimizer)
    batch = min(recipe.batch_size, images.shape[0])
    run = _Run(torch.compile(model) if compile else model, optimizer, recipe, augmentation, mean, std, seed,
               device, torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda"),
               batch, images.shape[0] // batch, epochs)
    for epoch in range(len(history), epochs):
        train_seconds = history[-1].train_seconds if history else 0.0
        report = _train_epoch(run, images, labels, epoch, train_seconds)
        settling = _settle_batch_norm(model, run, images, labels, (epoch + 1) * run.steps_per_epoch)
        history.append(dataclasses.replace(report, train_seconds=report.train_seconds + settling))
        if checkpointing is not None:
            save_training_checkpoint(checkpointing.directory, model, checkpointing.spec, optimizer,
                                     {"identity": checkpointing.identity,
                                      "history": [dataclasses.asdict(r) for r in history]})
        if on_epoch is not None:
            on_epoch(history[-1], model)
            model.train()
    return history


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every epoch and step of one :func:`fit` reads, fixed from its start to its end."""

    net: nn.Module  # the model, compiled or not
    optimizer: torch.optim.Optimizer
    recipe: Recipe
    augmentation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    seed: int
    device: torch.device
    autocast: torch.autocast  # bfloat16 on GPUs, off on CPUs
    batch: int
    steps_per_epoch: int  # full batches only: BatchNorm statistics stay comparable
    epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def _resume(checkpointing: Checkpointing | None, model: nn.Module, optimizer: torch.optim.Optimizer) -> list[EpochReport]:
    """The reports of the epochs a checkpoint in ``checkpointing.directory`` holds, with the model,
    optimiser and RNG states restored from it; none without a checkpoint."""
    if checkpointing is None:
        return []
    state = load_training_checkpoint(checkpointing.directory, model, optimizer)
    if state is None:
        return []
    _check_identity(checkpointing, state["identity"])
    return [EpochReport(**r) for r in state["history"]]


def saved_history(directory: str | Path) -> list[EpochReport]:
    """The reports of the epochs the checkpoint in ``directory`` holds (a finished trial keeps its
    last one), read without restoring it; none without a checkpoint."""
    state = read_training_state(directory)
    return [] if state is None else [EpochReport(**r) for r in state["history"]]


def _train_epoch(run: _Run, images: Images, labels: torch.Tensor, epoch: int, train_seconds: float) -> EpochReport:
    """Epoch ``epoch`` (0-based), its data order and augmentation drawn from (seed, epoch), after
    ``train_seconds`` of earlier training. Raises :class:`NonFiniteLoss`."""
    generator = torch.Generator(run.device).manual_seed(epoch_seed(run.seed, epoch))
    order = torch.randperm(images.shape[0], generator=generator, device=run.device)
    loss_sum = torch.zeros((), device=run.device)
    wrong = torch.zeros((), device=run.device, dtype=torch.long)
    skipped = 0
    started = time.perf_counter()
    batches = epoch_batches(images, labels, order, run.batch, run.steps_per_epoch, run.device)
    for i, (x, y, skipped_now) in enumerate(batches):
        skipped += skipped_now
        if not len(y):  # every file of the batch was skipped
            continue
        loss, logits = _step(run, x, y, epoch * run.steps_per_epoch + i, generator)
        loss_sum += loss.detach()
        wrong += (logits.detach().argmax(1) != y).sum()
    mean_loss = loss_sum.item() / run.steps_per_epoch  # .item() waits for the device: timing is honest
    seconds = time.perf_counter() - started
    if not math.isfinite(mean_loss):
        raise NonFiniteLoss(f"non-finite training loss ({mean_loss}) in epoch {epoch + 1}")
    trained = run.steps_per_epoch * run.batch - skipped
    lr = run.optimizer.param_groups[0]["lr"]  # the last step's: the schedule's value at the end of the epoch
    return EpochReport(epoch + 1, run.epochs, trained, mean_loss, wrong.item() / max(trained, 1), lr,
                       trained / seconds, train_seconds + seconds, skipped)


def _settle_batch_norm(model: nn.Module, run: _Run, images: Images, labels: torch.Tensor, steps: int) -> float:
    """Replace BatchNorm's running statistics by those of the first training images (unaugmented,
    the trained weights' own) while, after ``steps`` training steps, the running averages still
    hold more than ``BATCH_NORM_SETTLED`` of their initial values (mean 0, variance 1): then they
    describe no model, and a measurement in eval mode would be at chance. At the papers' budgets the
    averages settle within the first epoch and are left as training made them; at the smoke and demo
    budgets' few steps they are recomputed after every epoch (the "precise BatchNorm" of Wu &
    Johnson, 2021), a forward pass over at most ``SETTLING_IMAGES`` images. Training never reads
    them (it normalises by each batch's statistics), so the weights are unchanged. Returns the
    seconds it took (training's: the epoch's ``train_seconds`` include them)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.track_running_stats]
    momenta = [norm.momentum for norm in norms]
    if not norms or momenta[0] is None or (1 - momenta[0]) ** steps <= BATCH_NORM_SETTLED:
        return 0.0
    started = time.perf_counter()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches below
    batches = max(1, min(run.steps_per_epoch, SETTLING_IMAGES // run.batch))
    order = torch.arange(images.shape[0], device=run.device)
    try:
        with torch.no_grad(), run.autocast:
            for x, _, _ in epoch_batches(images, labels, order, run.batch, batches, run.device):
                if len(x):
                    model(to_model_input(x, run.mean, run.std))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    return time.perf_counter() - started


def _step(run: _Run, x: torch.Tensor, y: torch.Tensor, step: int,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a uint8 batch at the learning rate of global ``step``: its loss and logits."""
    lr = run.recipe.learning_rate(step, run.total_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with run.autocast:
        loss, logits = _loss(run, x, y, generator)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return loss, logits


def _loss(run: _Run, x: torch.Tensor, y: torch.Tensor,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Training loss of one uint8 batch and the logits of its (first) view."""
    smoothing = run.recipe.label_smoothing
    if run.augmentation != "augmix":
        logits = run.net(to_model_input(augment(x, run.augmentation, generator), run.mean, run.std))
        return F.cross_entropy(logits.float(), y, label_smoothing=smoothing), logits
    # AugMix: one crop, three views (clean, two mixes) in one forward pass, plus the
    # Jensen-Shannon consistency between their predictions.
    x = random_crop_flip(x, generator)
    views = torch.cat([x, augmix(x, generator), augmix(x, generator)])
    logits = run.net(to_model_input(views, run.mean, run.std)).float().chunk(3)
    probs = [F.softmax(z, 1) for z in logits]
    log_mixture = torch.clamp(sum(probs) / 3, 1e-7, 1).log()
    jsd = sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probs) / 3
    return F.cross_entropy(logits[0], y, label_smoothing=smoothing) + AUGMIX_JSD_WEIGHT * jsd, logits[0]


def _check_identity(checkpointing: Checkpointing, saved: dict[str, Any]) -> None:
    identity = json.loads(json.dumps(checkpointing.identity))  # as it reads back from the file
    for key in sorted(set(saved) | set(identity)):
        if saved.get(key) != identity.get(key):
            raise UserError(f"checkpoint {checkpointing.directory} belongs to another configuration "
                             f"({key}: {saved.get(key)!r} there, {identity.get(key)!r} here)")
