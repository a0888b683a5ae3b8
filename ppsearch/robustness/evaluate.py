"""Clean, -C and -P evaluation of one model, batched on its device.

Corrupted and perturbed images come either from the official files (``official:DIR``) or are
generated from the clean test images on the fly, on the device, with ppsearch's recipes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import pandas as pd
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..data.preprocess import to_model_input
from ..errors import UserError
from ..rundir import Column
from . import metrics
from .corruptions import BENCHMARK_CORRUPTIONS, SEVERITIES, corrupt
from .generate import in_chunks
from .official import (
    check_cifar_set,
    check_imagenet_c,
    check_imagenet_p,
    imagenet_c_chunks,
    imagenet_p_chunks,
    is_image_tree,
    load_cifar_c,
    load_cifar_p,
)
from .perturbations import perturb


def parse_source(value: str) -> tuple[str, Path | None]:
    """'generated', 'none' or 'official:DIR' (a directory of official-layout .npy files)."""
    if value in ("generated", "none"):
        return value, None
    kind, _, directory = value.partition(":")
    if kind != "official" or not directory:
        raise UserError(f"source must be 'generated', 'none' or 'official:DIR', got {value!r}")
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise UserError(f"official data directory {path} does not exist")
    return kind, path


class Predictor:
    """Predicted classes (or logits) of uint8 (N, H, W, C) images, in batches on ``device``
    (default batch: 256 on CPU, where larger batches fall out of cache and run slower, 1024 on
    GPUs). Always in float32: bfloat16 would flip near-tied predictions between frames and coarsen
    the push-minus-pull difference, changing the metrics (training may use it, evaluation never)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 device: str | torch.device = "cpu", batch_size: int | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.mean, self.std = mean, std
        self.batch_size = batch_size or (1024 if self.device.type == "cuda" else 256)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).argmax(1)

    @torch.inference_mode()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        # in eval mode whatever mode the model is left in (a trainer leaves it training): in
        # training mode BatchNorm would normalise by each batch's statistics and fold the measured
        # images, corrupted ones included, into its running statistics
        training = self.model.training
        self.model.eval()
        try:
            outputs = []
            for start in range(0, images.shape[0], self.batch_size):
                batch = images[start:start + self.batch_size].to(self.device, non_blocking=True)
                outputs.append(self.model(to_model_input(batch, self.mean, self.std)).float())
        finally:
            self.model.train(training)
        return torch.cat(outputs).cpu()


def batched_logits(predictor: Predictor, pieces: Iterable[tuple[Hashable, torch.Tensor]],
                   pass_images: int | None = None) -> dict[Hashable, torch.Tensor]:
    """Logits of keyed pieces of images (uint8, any leading shape before H, W, C: a -C cell's
    (N, ...) or a -P set's (N, T, ...)), shaped like their pieces, pieces of one key concatenated.
    Pieces are gathered into passes of at least ``pass_images`` images (default: 8 of the
    predictor's batches), so that 75 small -C cells run as a few full batches, not 75 small ones."""
    pass_images = pass_images or 8 * predictor.batch_size
    outputs: dict[Hashable, list[torch.Tensor]] = {}
    pending: list[tuple[Hashable, torch.Tensor]] = []

    def run_pending() -> None:
        flat = [piece.flatten(0, piece.dim() - 4) for _, piece in pending]
        parts = predictor.logits(torch.cat(flat)).split([len(f) for f in flat])
        for (key, piece), part in zip(pending, parts):
            outputs.setdefault(key, []).append(part.view(*piece.shape[:-3], -1))
        pending.clear()

    gathered = 0
    for key, piece in pieces:
        pending.append((key, piece))
        gathered += math.prod(piece.shape[:-3])
        if gathered >= pass_images:
            run_pending()
            gathered = 0
    if pending:
        run_pending()
    return {key: torch.cat(parts) for key, parts in outputs.items()}


class CleanPassWatcher(Protocol):
    """A measurement on the first ``images`` clean images that shares the evaluation's forward
    pass over them instead of making its own (:class:`ppsearch.training.sparsity.ResponseSparsity`)."""

    images: int

    def watching(self) -> AbstractContextManager[object]: ...


@dataclasses.dataclass
class Evaluation:
    images: int
    clean_error: float  # on the first ``images`` test images; relative CE's is in the summary (Column.RCE_*)
    corruption_errors: pd.DataFrame  # corruption, severity, error
    flip_probabilities: dict[str, float]
    top5_distances: dict[str, float]  # empty with fewer than 5 classes
    ce: pd.DataFrame | None
    fr: pd.DataFrame | None
    summary: dict
    sources: dict[str, str]

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.corruption_errors.to_csv(out / "corruption_errors.csv", index=False)
        for name, table in (("ce", self.ce), ("fr", self.fr)):
            if table is not None:
                table.to_csv(out / f"{name}.csv", index=False)
        summary = {"images": self.images, "clean_error": self.clean_error, **self.summary, "sources": self.sources,
                   "flip_probabilities": self.flip_probabilities, "top5_distances": self.top5_distances}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return out

    def render(self) -> str:
        lines = [f"images           {self.images} ({', '.join(f'{k}: {v}' for k, v in self.sources.items())})",
                 f"protocol         {self.summary[Column.PROTOCOL]}",
                 f"clean error      {self.clean_error:.4f}"]
        if self.ce is not None:
            lines += [f"mCE              {self.summary[Column.MCE]:.4f}   relative mCE "
                      f"{self.summary[Column.RELATIVE_MCE]:.4f}",
                      f"  normalised by  {self.summary[Column.CE_NORMALISER]}",
                      f"  relative CE subtracts the clean error {self.summary[Column.RCE_CLEAN_ERROR]:.4f} of the "
                      f"first {self.summary[Column.RCE_IMAGES]} images, the -C errors' own",
                      f"mean corruption error (unnormalised, RobustBench's convention) "
                      f"{self.summary[Column.CORRUPTION_ERROR]:.4f}",
                      self.ce.drop(columns="normaliser").to_string(index=False, float_format="%.4f")]
        if self.fr is not None:
            lines += [f"mFR              {self.summary[Column.MFR]:.4f}",
                      f"  normalised by  {self.summary[Column.FR_NORMALISER]}"]
            if Column.MT5D in self.summary:
                lines.append(f"mT5D             {self.summary[Column.MT5D]:.4f}   normalised by "
                             f"{self.summary[Column.T5D_NORMALISER]}")
            table = self.fr.drop(columns="normaliser")
            if self.top5_distances:
                table = table.assign(t5d=table["perturbation"].map(self.top5_distances))
            lines.append(table.to_string(index=False, float_format="%.4f"))
        return "\n".join(lines)


def evaluate(
    predictor: Predictor,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    c_source: str = "generated",
    p_source: str = "generated",
    corruptions: tuple[str, ...] = BENCHMARK_CORRUPTIONS,
    protocol: str = metrics.SEED_PAPER,
    dataset: str | None = None,
    frost_dir: str | Path | None = None,
    clean_images: int | None = None,
    c_images: int | None = None,
    p_images: int | None = None,
    seed: int = 0,
    progress: bool = True,
    classes: Sequence[str] | None = None,
    watch_clean: CleanPassWatcher | None = None,
) -> Evaluation:
    """Evaluate on the clean test ``images`` (uint8 NHWC) and their -C / -P versions, each on the
    first ``clean_images`` / ``c_images`` / ``p_images`` of them (None: all; for an ImageNet-C tree,
    the first ``c_images`` of each cell in class-balanced order, the test images' order), under
    ``protocol`` for ``dataset`` (which fix the -P frame rule, the perturbations and the normalisers;
    dataset None: judged by the image size, see :meth:`metrics.Protocol.setup`). Relative CE
    subtracts the clean error of the first ``c_images`` images, the ones the corrupted errors are
    measured on, whatever ``clean_images`` is. An ``official:DIR`` source is
    either CIFAR-C/-P ``.npy`` files, whose labels must index ``classes`` (the test set's; None:
    their range is not checked), or an ImageNet-C tree ``<corruption>/<severity>/<wnid>/`` /
    ImageNet-P tree ``<perturbation>/<wnid>/*.mp4``, whose class folders are matched to
    ``classes``, streamed a chunk at a time. ``watch_clean`` watches the pass over the clean
    images, which then covers at least its first ``watch_clean.images``."""
    c_kind, c_dir = parse_source(c_source)
    p_kind, p_dir = parse_source(p_source)
    setup = metrics.get_protocol(protocol).setup(dataset, max(images.shape[1:3]))
    perturbations = setup.perturbations
    c_tree = _checked_tree(c_kind, c_dir, corruptions, classes, images.shape[1:3], sequences=False)
    p_tree = _checked_tree(p_kind, p_dir, perturbations, classes, images.shape[1:3], sequences=True)
    if images.shape[-1] == 1:  # the recipes are defined on RGB
        images = images.expand(-1, -1, -1, 3)
    steps = (len(corruptions) * len(SEVERITIES) if c_kind != "none" else 0) + (len(perturbations) if p_kind != "none" else 0)
    bar = tqdm(total=steps + 1, desc="eval", unit="set", disable=not progress, leave=False)
    # one pass over the clean images both clean errors need (the reported one and relative CE's)
    # and the watcher's measurement
    limits = (clean_images,) if c_kind == "none" else (clean_images, c_images)
    with watch_clean.watching() if watch_clean else contextlib.nullcontext():
        wrong = _mistakes(predictor, images, labels, limits + ((watch_clean.images,) if watch_clean else ()))
    clean_error = wrong[:clean_images].mean().item()
    bar.update()

    errors, ce = pd.DataFrame(columns=["corruption", "severity", "error"]), None
    if c_kind != "none":
        c_sets = _Sets(c_kind, c_dir, c_tree, corruptions, images, labels, c_images, classes, seed, predictor.device)
        errors = _corruption_errors(predictor, c_sets, frost_dir, bar)
        rce_clean = wrong[:c_images]
        ce = metrics.ce_table(errors, rce_clean.mean().item(), setup.ce_normaliser)
    flips, top5, fr = {}, {}, None
    if p_kind != "none":
        p_sets = _Sets(p_kind, p_dir, p_tree, perturbations, images, labels, p_images, classes, seed, predictor.device)
        flips, top5 = _flips(predictor, p_sets, protocol, bar)
        fr = metrics.fr_table(flips, setup.fr_normaliser)
    bar.close()
    summary = metrics.summary(setup, ce, fr, top5)
    if ce is not None:
        summary.update({Column.CORRUPTION_ERROR: float(errors["error"].mean()),
                        Column.RCE_CLEAN_ERROR: rce_clean.mean().item(), Column.RCE_IMAGES: len(rce_clean)})
    return Evaluation(len(labels[:clean_images]), clean_error, errors, flips, top5, ce, fr, summary,
                      {"-C": c_source, "-P": p_source})


def _mistakes(predictor: Predictor, images: torch.Tensor, labels: torch.Tensor,
              limits: tuple[int | None, ...]) -> torch.Tensor:
    """1.0 where the prediction is wrong, 0.0 where it is right, on as many of the first images as
    the largest of ``limits`` (all of them where one is None)."""
    measured = None if None in limits else max(limits)
    return (predictor(images[:measured]) != labels[:measured]).double()


def _checked_tree(kind: str, directory: Path | None, names: Sequence[str], classes: Sequence[str] | None,
                  image_shape: Sequence[int], *, sequences: bool) -> bool:
    """Whether an official -C (or, ``sequences``, -P) source is an ImageNet tree rather than CIFAR
    ``.npy`` files, its ``names`` checked now: a bad file or folder fails before the others were evaluated."""
    if kind != "official":
        return False
    if not is_image_tree(directory):
        check_cifar_set(directory, names, sequences, image_shape, classes)
        return False
    benchmark = "ImageNet-P" if sequences else "ImageNet-C"
    if classes is None:
        raise UserError(f"{directory} is an {benchmark} tree: its class folders need the test set's class names")
    (check_imagenet_p if sequences else check_imagenet_c)(directory, names, classes)
    return True


@dataclasses.dataclass(frozen=True)
class _Sets:
    """The -C or -P sets of one evaluation: official files in ``directory`` (an ImageNet tree, or
    CIFAR ``.npy`` files) or generated from the clean test images."""

    kind: str  # official or generated
    directory: Path | None
    tree: bool
    names: Sequence[str]  # corruptions or perturbations
    images: torch.Tensor  # the clean test images, RGB
    labels: torch.Tensor  # their labels, a generated -C cell's
    subset: int | None  # how many are evaluated, from the first (an ImageNet tree's class-balanced); None: all
    classes: Sequence[str] | None  # the test set's: what an ImageNet tree's class folders are matched to
    seed: int
    device: torch.device

    def generated(self, make: Callable[[torch.Tensor, int], torch.Tensor]) -> Iterator[torch.Tensor]:
        """``make(chunk, chunk_seed)`` of the first ``subset`` clean images, a chunk at a time."""
        return in_chunks(self.images[:self.subset], make, self.seed, self.device)


def _corruption_errors(predictor: Predictor, sets: _Sets, frost_dir: str | Path | None, bar: tqdm) -> pd.DataFrame:
    """The error on every corruption x severity cell of the -C ``sets``, their images streamed
    through the predictor a piece at a time."""
    truth: dict[tuple[str, int], torch.Tensor] = {}

    def corrupted() -> Iterator[tuple[tuple[str, int], torch.Tensor]]:
        for name in sets.names:
            for severity in SEVERITIES:
                bar.set_postfix_str(f"{name} {severity}")
                if sets.tree:
                    labelled = []
                    for x, y in imagenet_c_chunks(sets.directory, name, severity, sets.classes, sets.images.shape[1],
                                                  sets.subset):
                        labelled.append(y)
                        yield (name, severity), x
                    truth[name, severity] = torch.cat(labelled)
                elif sets.kind == "official":
                    x, truth[name, severity] = load_cifar_c(sets.directory, name, severity, sets.subset)
                    yield (name, severity), x
                else:
                    truth[name, severity] = sets.labels[:sets.subset]
                    yield from (((name, severity), part) for part in sets.generated(
                        lambda x, s, name=name, severity=severity: corrupt(x, name, severity, s, frost_dir=frost_dir)))
                bar.update()

    logits = batched_logits(predictor, corrupted())
    values = {key: (logits[key].argmax(-1) != truth[key]).double().mean().item() for key in logits}
    return metrics.corruption_errors(values)


def _flips(predictor: Predictor, sets: _Sets, protocol: str, bar: tqdm) -> tuple[dict[str, float], dict[str, float]]:
    """The flip probability and (with at least :data:`TOP5` classes) the top-5 distance of every
    perturbation of the -P ``sets``, their sequences streamed through the predictor a piece at a time."""

    def perturbed() -> Iterator[tuple[str, torch.Tensor]]:
        for name in sets.names:
            bar.set_postfix_str(name)
            if sets.tree:
                yield from ((name, part) for part, _ in imagenet_p_chunks(sets.directory, name, sets.classes,
                                                                          sets.images.shape[1], sets.subset))
            elif sets.kind == "official":
                yield name, load_cifar_p(sets.directory, name, sets.subset)[0]
            else:
                yield from ((name, part) for part in sets.generated(lambda x, s, name=name: perturb(x, name, s)))
            bar.update()

    flips, top5 = {}, {}
    for name, sequences in batched_logits(predictor, perturbed()).items():
        flips[name] = metrics.flip_probability(sequences.argmax(-1), name, protocol)
        if sequences.shape[-1] >= TOP5:
            top5[name] = metrics.top5_distance(sequences, name, protocol)
    return flips, top5


TOP5 = 5  # classes a top-5 distance needs
