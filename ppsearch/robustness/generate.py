"""Write generated -C and -P sets in the official CIFAR-10-C / CIFAR-10-P layout, plus a manifest.

``<out>/<Name>-C/<corruption>.npy`` holds (5 N, H, W, 3) uint8 rows, severity s in rows
[(s-1) N, s N); ``<out>/<Name>-P/<perturbation>.npy`` holds (N, T, H, W, 3); each folder has
``labels.npy``. Everything is written under ``<out>.partial`` and renamed when complete, so a
half-finished set never carries the final name.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..errors import UserError
from ..files import atomic_directory, read_json, write_json
from .corruptions import ALL_CORRUPTIONS, SEVERITIES, corrupt
from .corruptions.params import table_name
from .corruptions.weather import frost_source
from .perturbations import ALL_PERTURBATIONS, perturb, recipe_for

CHUNK = 1000  # images generated at a time, so long -P sequences of large sets fit in device memory

SETS_MANIFEST = "manifest.json"  # beside the -C and -P folders: how the sets were made
SET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "fashion-mnist": "Fashion-MNIST", "imagenet": "ImageNet"}


def set_dirs(out: str | Path, dataset: str) -> tuple[Path, Path]:
    """The -C and -P folders of a set written by :func:`write_sets` to ``out``."""
    name = SET_NAMES.get(dataset, dataset)
    return Path(out) / f"{name}-C", Path(out) / f"{name}-P"


def cached_sets(out: str | Path, images: torch.Tensor, labels: torch.Tensor, dataset: str, *,
                device: str = "cpu", seed: int = 0, progress: bool = True) -> tuple[Path, Path]:
    """The -C and -P folders of ``images``' sets under ``out``, written on first use. A run makes its
    sets once and every trial reads them; an existing set must hold the same images and seed."""
    out = Path(out)
    manifest = out / SETS_MANIFEST
    if manifest.is_file():
        made = read_json(manifest)
        wanted = {"dataset": dataset, "images": int(images.shape[0]), "seed": seed}
        differing = [k for k, v in wanted.items() if made.get(k) != v]
        if differing:
            key = differing[0]
            raise UserError(f"generated sets in {out} were made with {key}={made.get(key)!r}, this run needs "
                             f"{key}={wanted[key]!r}; remove {out} or use another output directory")
    else:
        write_sets(images, labels, out, dataset, device=device, seed=seed, progress=progress)
    return set_dirs(out, dataset)


def in_chunks(images: torch.Tensor, make: Callable[[torch.Tensor, int], torch.Tensor], seed: int,
              device: str | torch.device) -> Iterator[torch.Tensor]:
    """``make(chunk, chunk_seed)`` for consecutive chunks of ``images`` on ``device``. Each chunk has
    its own seed derived from (seed, offset), so random corruptions never repeat across chunks and a
    set is the same whether it is written to disk or generated for an evaluation."""
    for start in range(0, images.shape[0], CHUNK):
        chunk_seed = seed if start == 0 else int(np.random.SeedSequence([seed, start]).generate_state(1)[0])
        yield make(images[start:start + CHUNK].to(device), chunk_seed)


def write_sets(
    images: torch.Tensor,
    labels: torch.Tensor,
    out: str | Path,
    dataset: str,
    *,
    device: str = "cpu",
    frost_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Generate every corruption x severity and every perturbation of ``images`` (uint8 NHWC)."""
    out = Path(out)
    if out.exists():
        raise UserError(f"output directory {out} already exists; choose a new --out")
    if images.shape[-1] == 1:
        images = images.expand(-1, -1, -1, 3)
    with atomic_directory(out) as partial:
        _write_sets(images, labels, partial, dataset, device=device, frost_dir=frost_dir, seed=seed, progress=progress,
                    label=out.name)
    return out


def _write_sets(images: torch.Tensor, labels: torch.Tensor, partial: Path, dataset: str, *, device: str,
                frost_dir: str | Path | None, seed: int, progress: bool, label: str) -> None:
    """Every set into ``partial``; the progress bar names the folder (``label``): a run makes two."""
    c_dir, p_dir = set_dirs(partial, dataset)
    name = c_dir.name[:-2]
    c_dir.mkdir(parents=True)
    p_dir.mkdir()
    labels_np = labels.cpu().numpy().astype(np.int64)
    np.save(c_dir / "labels.npy", np.tile(labels_np, len(SEVERITIES)))
    np.save(p_dir / "labels.npy", labels_np)

    def generated(make: Callable[[torch.Tensor, int], torch.Tensor]) -> np.ndarray:
        return np.concatenate([part.cpu().numpy() for part in in_chunks(images, make, seed, device)])

    bar = tqdm(total=len(ALL_CORRUPTIONS) * len(SEVERITIES) + len(ALL_PERTURBATIONS), unit="set",
               desc=f"{name}-C/-P ({label})", disable=not progress)
    for corruption in ALL_CORRUPTIONS:
        rows = []
        for severity in SEVERITIES:
            bar.set_postfix_str(f"{corruption} {severity}")
            rows.append(generated(lambda x, s, c=corruption, v=severity: corrupt(x, c, v, s, frost_dir=frost_dir)))
            bar.update()
        np.save(c_dir / f"{corruption}.npy", np.concatenate(rows))
    frame_counts = {}
    for perturbation in ALL_PERTURBATIONS:
        bar.set_postfix_str(perturbation)
        frames = generated(lambda x, s, p=perturbation: perturb(x, p, s))
        frame_counts[perturbation] = int(frames.shape[1])
        np.save(p_dir / f"{perturbation}.npy", frames)
        bar.update()
    bar.close()

    manifest = {
        "generated": True,
        "ppsearch_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "dataset": dataset,
        "images": int(images.shape[0]),
        "image_size": list(images.shape[1:3]),
        "seed": seed,
        "device": str(device),
        "recipe": "Hendrycks & Dietterich CIFAR-10-C / CIFAR-10-P recipes, reimplemented in batched torch "
                  "(Tiny-ImageNet-C parameters up to 64x64, ImageNet-C and ImageNet-P parameters above 32x32)",
        "parameters": f"{table_name(*images.shape[1:3])} tables, {recipe_for(*images.shape[1:3]).name} recipe",
        "frost_textures": frost_source(frost_dir),
        "corruptions": list(ALL_CORRUPTIONS),
        "severities": list(SEVERITIES),
        "perturbations": frame_counts,
        "layout": {"-C": f"{c_dir.name}/<corruption>.npy (5 N rows, severity-major) + labels.npy",
                   "-P": f"{p_dir.name}/<perturbation>.npy (N, T, H, W, 3) + labels.npy"},
    }
    write_json(partial / SETS_MANIFEST, manifest)
