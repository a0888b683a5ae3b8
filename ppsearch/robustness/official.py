"""Loaders for the official CIFAR-10/100-C, CIFAR-10-P and ImageNet-C releases.

Layouts (Hendrycks & Dietterich, ICLR 2019):

* CIFAR-10-C / CIFAR-100-C: ``<root>/<corruption>.npy`` of uint8 (5 * N, 32, 32, 3), rows
  ``[(s - 1) * N, s * N)`` holding severity ``s`` in test-set order, and ``<root>/labels.npy``
  with one label per row. The official files have N = 10000; any N is accepted, and any image
  size (sets that ``ppsearch corrupt`` writes for larger images use the same layout).
* CIFAR-10-P: ``<root>/<perturbation>.npy`` of uint8 (N, T, 32, 32, 3) frame sequences and
  ``<root>/labels.npy`` of shape (N,).
* ImageNet-C: ``<root>/<corruption>/<severity>/<wnid>/<image>.JPEG``, already 224x224.

Problems with the files raise :class:`OfficialDataError` with a one-line message naming the file.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import read_image_folder
from ..errors import UserError
from .corruptions import SEVERITIES


class OfficialDataError(UserError):
    """An official benchmark file is missing, truncated or has the wrong shape or dtype."""


def load_cifar_c(root: str | Path, corruption: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, H, W, 3) and labels int64 (N,) of one corruption at one severity.

    The array is memory-mapped, so only the severity's rows are read from disk.
    """
    _check_severity(severity)
    images = _open_cifar_c(Path(root), corruption)
    labels = _open_labels(Path(root), images.shape[0], "CIFAR-C")
    rows = slice((severity - 1) * images.shape[0] // 5, severity * images.shape[0] // 5)
    return _to_tensor(images[rows]), _to_tensor(labels[rows]).long()


def load_cifar_p(root: str | Path, perturbation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame sequences uint8 (N, T, H, W, 3) and labels int64 (N,) of one perturbation.

    The official files hold 10000 sequences, about 1 GB per perturbation in memory.
    """
    frames = _open_cifar_p(Path(root), perturbation)
    labels = _open_labels(Path(root), frames.shape[0], "CIFAR-P")
    return _to_tensor(frames), _to_tensor(labels).long()


def check_cifar_set(root: str | Path, names: Iterable[str], perturbations: bool, image_size: tuple[int, int]) -> None:
    """Every file an evaluation will read from an official -C (or, with ``perturbations``, -P)
    folder opens and holds images of ``image_size`` (the clean test images'), checked before any
    is evaluated (memory-mapped: nothing is read)."""
    root = Path(root)
    for name in names:
        array = _open_cifar_p(root, name) if perturbations else _open_cifar_c(root, name)
        size = tuple(array.shape[-3:-1])
        if size != tuple(image_size):
            raise OfficialDataError(f"{root / name}.npy holds {size[0]}x{size[1]} images; the test images are "
                                    f"{image_size[0]}x{image_size[1]}")


def _open_cifar_c(root: Path, corruption: str) -> np.ndarray:
    return _open_npy(root, corruption, "CIFAR-C", "(5 * N, H, W, 3)",
                     lambda shape: len(shape) == 4 and shape[-1] == 3 and shape[0] % 5 == 0)


def _open_cifar_p(root: Path, perturbation: str) -> np.ndarray:
    return _open_npy(root, perturbation, "CIFAR-P", "(N, T >= 2, H, W, 3)",
                     lambda shape: len(shape) == 5 and shape[-1] == 3 and shape[1] >= 2)


def load_imagenet_c(
    root: str | Path,
    corruption: str,
    severity: int,
    image_size: int = 224,
    subset: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, S, S, 3) and labels int64 (N,) of one ImageNet-C corruption and severity.

    Classes are the sorted wnids. The official images are already centre crops, so they are only
    resized to ``image_size`` (a no-op at 224). ``subset`` takes the first N images in
    class-balanced order (see :func:`ppsearch.data.read_image_folder`).
    """
    _check_severity(severity)
    folder = Path(root) / corruption / str(severity)
    if not folder.is_dir():
        available = _names(p.name for p in Path(root).glob("*") if p.is_dir())
        raise OfficialDataError(f"ImageNet-C folder {folder} not found; available corruptions: {available}")
    try:
        images, labels, _ = read_image_folder(folder, image_size, subset, crop_pct=1.0)
    except ValueError as err:  # DatasetNotFoundError or an undecodable image
        raise OfficialDataError(f"ImageNet-C {err}") from None
    return images, labels


def _check_severity(severity: int) -> None:
    if severity not in SEVERITIES:
        raise UserError(f"severity must be one of 1..5, got {severity!r}")


def _names(names: Iterable[str]) -> str:
    """A sorted list of what is there, for error messages."""
    return ", ".join(sorted(names)) or "none"


def _load_npy(path: Path, kind: str, hint: str = "") -> np.ndarray:
    """Memory-map a .npy file, turning numpy's errors into one-line OfficialDataErrors."""
    if not path.is_file():
        raise OfficialDataError(f"{kind} file {path} not found{hint}")
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OfficialDataError(f"{kind} file {path} is truncated or not a .npy array: {message}") from None


def _open_npy(root: Path, name: str, kind: str, expected: str, valid: Callable[[tuple], bool]) -> np.ndarray:
    """Memory-map ``<root>/<name>.npy`` and check it is uint8 with a shape that is ``valid``."""
    path = root / f"{name}.npy"
    available = _names(p.stem for p in root.glob("*.npy") if p.stem != "labels")
    array = _load_npy(path, kind, f"; available in {root}: {available}")
    if array.dtype != np.uint8:
        raise OfficialDataError(f"{kind} file {path} has dtype {array.dtype}; expected uint8 {expected}")
    if not valid(array.shape):
        raise OfficialDataError(f"{kind} file {path} has shape {array.shape}; expected {expected}")
    return array


def _open_labels(root: Path, rows: int, kind: str) -> np.ndarray:
    path = root / "labels.npy"
    labels = _load_npy(path, kind)
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (rows,):
        raise OfficialDataError(
            f"{kind} file {path} has {labels.dtype} {labels.shape}; expected integer labels ({rows},)")
    return labels


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """Read the (memory-mapped) rows into a writable in-memory tensor."""
    return torch.from_numpy(np.array(array))
