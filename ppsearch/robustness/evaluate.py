"""Clean, -C and -P evaluation of one model, batched on its device.

Corrupted and perturbed images come either from the official files (``official:DIR``) or are
generated from the clean test images on the fly, on the device, with ppsearch's recipes.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..data.preprocess import to_model_input
from ..errors import UserError
from . import metrics
from .corruptions import BENCHMARK_CORRUPTIONS, SEVERITIES, corrupt
from .generate import in_chunks
from .official import check_cifar_set, load_cifar_c, load_cifar_p
from .perturbations import TEST_PERTURBATIONS, perturb


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
    """Predicted classes of uint8 (N, H, W, C) images, in batches on ``device`` (default batch: 256
    on CPU, where larger batches fall out of cache and run slower, 1024 on GPUs)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 device: str | torch.device = "cpu", batch_size: int | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.mean, self.std = mean, std
        self.batch_size = batch_size or (1024 if self.device.type == "cuda" else 256)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        predictions = []
        autocast = torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda")
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(self.device, non_blocking=True)
            with autocast:
                predictions.append(self.model(to_model_input(batch, self.mean, self.std)).argmax(1))
        return torch.cat(predictions).cpu()


@dataclasses.dataclass
class Evaluation:
    images: int
    clean_error: float
    corruption_errors: pd.DataFrame  # corruption, severity, error
    flip_probabilities: dict[str, float]
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
                   "flip_probabilities": self.flip_probabilities}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return out

    def render(self) -> str:
        lines = [f"images           {self.images} ({', '.join(f'{k}: {v}' for k, v in self.sources.items())})",
                 f"clean error      {self.clean_error:.4f}"]
        if self.ce is not None:
            lines += [f"mCE              {self.summary['mce']:.4f}   relative mCE {self.summary['relative_mce']:.4f}",
                      f"  normalised by  {self.summary['ce_normaliser']}",
                      self.ce.drop(columns="normaliser").to_string(index=False, float_format="%.4f")]
        if self.fr is not None:
            lines += [f"mFR              {self.summary['mfr']:.4f}", f"  normalised by  {self.summary['fr_normaliser']}",
                      self.fr.drop(columns="normaliser").to_string(index=False, float_format="%.4f")]
        return "\n".join(lines)


def evaluate(
    predictor: Predictor,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    c_source: str = "generated",
    p_source: str = "generated",
    corruptions: tuple[str, ...] = BENCHMARK_CORRUPTIONS,
    perturbations: tuple[str, ...] = TEST_PERTURBATIONS,
    normaliser: str = "alexnet-cifar10",
    frost_dir: str | Path | None = None,
    clean_images: int | None = None,
    c_images: int | None = None,
    p_images: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Evaluation:
    """Evaluate on the clean test ``images`` (uint8 NHWC) and their -C / -P versions, each on the
    first ``clean_images`` / ``c_images`` / ``p_images`` of them (None: all)."""
    c_kind, c_dir = parse_source(c_source)
    p_kind, p_dir = parse_source(p_source)
    norm = metrics.Normaliser.from_name(normaliser)
    if c_kind == "official":  # a bad file fails now, not after the others were evaluated
        check_cifar_set(c_dir, corruptions, False, images.shape[1:3])
    if p_kind == "official":
        check_cifar_set(p_dir, perturbations, True, images.shape[1:3])
    if images.shape[-1] == 1:  # the recipes are defined on RGB
        images = images.expand(-1, -1, -1, 3)
    steps = (len(corruptions) * len(SEVERITIES) if c_kind != "none" else 0) + (len(perturbations) if p_kind != "none" else 0)
    bar = tqdm(total=steps + 1, desc="eval", unit="set", disable=not progress, leave=False)
    clean_error = (predictor(images[:clean_images]) != labels[:clean_images]).double().mean().item()
    bar.update()

    errors, ce = pd.DataFrame(columns=["corruption", "severity", "error"]), None
    if c_kind != "none":
        values = {}
        for name in corruptions:
            for severity in SEVERITIES:
                bar.set_postfix_str(f"{name} {severity}")
                if c_kind == "official":
                    x, y = load_cifar_c(c_dir, name, severity)
                    predictions = predictor(x[:c_images])
                else:
                    y = labels
                    predictions = torch.cat([predictor(part) for part in in_chunks(
                        images[:c_images],
                        lambda x, s, name=name, severity=severity: corrupt(x, name, severity, s, frost_dir=frost_dir),
                        seed, predictor.device)])
                values[(name, severity)] = (predictions != y[:c_images]).double().mean().item()
                bar.update()
        errors = metrics.corruption_errors(values)
        ce = metrics.ce_table(errors, clean_error, norm)

    flips, fr = {}, None
    if p_kind != "none":
        for name in perturbations:
            bar.set_postfix_str(name)
            if p_kind == "official":
                parts = [load_cifar_p(p_dir, name)[0][:p_images]]
            else:
                parts = in_chunks(images[:p_images], lambda x, s, name=name: perturb(x, name, s), seed, predictor.device)
            predictions = torch.cat([predictor(frames.flatten(0, 1)).view(frames.shape[:2]) for frames in parts])
            flips[name] = metrics.flip_probability(predictions, name)
            bar.update()
        fr = metrics.fr_table(flips, norm)
    bar.close()
    summary = metrics.summary(ce, fr) if ce is not None or fr is not None else {}
    return Evaluation(len(labels[:clean_images]), clean_error, errors, flips, ce, fr, summary, {"-C": c_source, "-P": p_source})
