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
A ``.npy`` file is memory-mapped once per process and the map kept while the file stays the same
one: a search worker measures every trial on the run's sets, and re-opening them per trial and
per corruption cost more than reading the rows it needs.
"""
from __future__ import annotations

import os
import pickle
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import image_folder_samples
from ..data.streaming import decode_images
from ..errors import UserError
from .corruptions import SEVERITIES


class OfficialDataError(UserError):
    """An official benchmark file is missing, truncated or has the wrong shape or dtype."""


def load_cifar_c(root: str | Path, corruption: str, severity: int,
                 subset: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (N, H, W, 3) and labels int64 (N,) of one corruption at one severity, the
    first ``subset`` of them (None: all). Only those rows are read from disk."""
    _check_severity(severity)
    images = _open_cifar_c(Path(root), corruption)
    labels = _open_labels(Path(root), images.shape[0], "CIFAR-C")
    start, stop = (severity - 1) * images.shape[0] // 5, severity * images.shape[0] // 5
    rows = slice(start, stop if subset is None else min(stop, start + subset))
    return _to_tensor(images[rows]), _to_tensor(labels[rows]).long()


def load_cifar_p(root: str | Path, perturbation: str,
                 subset: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame sequences uint8 (N, T, H, W, 3) and labels int64 (N,) of one perturbation, the first
    ``subset`` sequences (None: all). Only those are read from disk: the official files hold 10000
    sequences, about 1 GB per perturbation in memory."""
    frames = _open_cifar_p(Path(root), perturbation)
    labels = _open_labels(Path(root), frames.shape[0], "CIFAR-P")
    return _to_tensor(frames[:subset]), _to_tensor(labels[:subset]).long()


def check_cifar_set(root: str | Path, names: Iterable[str], perturbations: bool, image_size: tuple[int, int],
                    classes: Sequence[str] | None) -> None:
    """Every file an evaluation will read from an official -C (or, with ``perturbations``, -P)
    folder opens and holds images of ``image_size`` (the clean test images'), and ``labels.npy``
    holds one integer label per image, each a class of ``classes`` (the test set's; None, as
    for sets ppsearch wrote from the test set itself: not checked), checked before any is evaluated
    (memory-mapped: only the labels are read)."""
    root = Path(root)
    kind = "CIFAR-P" if perturbations else "CIFAR-C"
    for name in names:
        array = _open_cifar_p(root, name) if perturbations else _open_cifar_c(root, name)
        size = tuple(array.shape[-3:-1])
        if size != tuple(image_size):
            raise OfficialDataError(f"{root / name}.npy holds {size[0]}x{size[1]} images; the test images are "
                                    f"{image_size[0]}x{image_size[1]}")
        labels = _open_labels(root, array.shape[0], kind)
        if classes is not None:
            outside = labels[(labels < 0) | (labels >= len(classes))]
            if outside.size:
                raise OfficialDataError(f"{kind} file {root / 'labels.npy'} holds label {outside[0]}; the test set's "
                                        f"{len(classes)} classes are labelled 0 to {len(classes) - 1}")


def _open_cifar_c(root: Path, corruption: str) -> np.ndarray:
    return _open_npy(root, corruption, "CIFAR-C", "(5 * N, H, W, 3)",
                     lambda shape: len(shape) == 4 and shape[-1] == 3 and shape[0] % 5 == 0)


def _open_cifar_p(root: Path, perturbation: str) -> np.ndarray:
    return _open_npy(root, perturbation, "CIFAR-P", "(N, T >= 2, H, W, 3)",
                     lambda shape: len(shape) == 5 and shape[-1] == 3 and shape[1] >= 2)


def is_image_tree(root: str | Path) -> bool:
    """Whether an official folder has ImageNet-C's layout (``<corruption>/<severity>/<wnid>/``)
    rather than CIFAR-C's ``.npy`` files."""
    root = Path(root)
    return not any(root.glob("*.npy")) and any(p.is_dir() for p in root.iterdir())


def check_imagenet_c(root: str | Path, corruptions: Iterable[str], classes: Sequence[str]) -> None:
    """Every corruption x severity folder an evaluation will read exists and holds only class
    folders of ``classes`` (the wnids the model was trained on), checked before any is evaluated."""
    for corruption in corruptions:
        for severity in SEVERITIES:
            _check_class_folder(Path(root), Path(corruption) / str(severity), classes, "ImageNet-C")


def check_imagenet_p(root: str | Path, perturbations: Iterable[str], classes: Sequence[str]) -> None:
    """Every perturbation folder an evaluation will read exists and holds only class folders of
    ``classes``, checked before any video is decoded."""
    for perturbation in perturbations:
        _check_class_folder(Path(root), Path(perturbation), classes, "ImageNet-P")


def _check_class_folder(root: Path, relative: Path, classes: Sequence[str], kind: str) -> None:
    folder = root / relative
    if not folder.is_dir():
        if folder.parent != root and folder.parent.is_dir():  # a corruption without this severity
            there = _names(p.name for p in folder.parent.glob("*") if p.is_dir())
        else:
            listed = "corruptions" if kind == "ImageNet-C" else "perturbations"
            there = f"{listed} {_names(p.name for p in root.glob('*') if p.is_dir())}"
        raise OfficialDataError(f"{kind} folder {folder} not found (there: {there})")
    known = set(classes)
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in known)
    if unknown:
        raise OfficialDataError(f"{kind} folder {folder / unknown[0]} is not a class of the test set "
                                f"(its {len(known)} classes are its folder names, e.g. {sorted(known)[0]})")


def imagenet_c_chunks(root: str | Path, corruption: str, severity: int, classes: Sequence[str], image_size: int,
                      subset: int | None = None, chunk: int = 1000) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Images uint8 (n, S, S, 3) and labels int64 (n,) of one ImageNet-C corruption and severity,
    decoded ``chunk`` images at a time (a cell holds 50,000 images: 7.5 GB decoded at 224 px).
    Labels index ``classes``; the official images are already centre crops, so they are only
    resized to ``image_size`` (a no-op at 224). ``subset`` takes the first N in class-balanced
    order (see :func:`ppsearch.data.datasets.image_folder_samples`)."""
    _check_severity(severity)
    paths, labels, found = image_folder_samples(Path(root) / corruption / str(severity), subset)
    index = {name: i for i, name in enumerate(classes)}
    labels = torch.tensor([index[found[i]] for i in labels.tolist()], dtype=torch.long)
    for start in range(0, len(paths), chunk):
        yield decode_images(paths[start:start + chunk], image_size, crop_pct=1.0), labels[start:start + chunk]


def imagenet_p_chunks(root: str | Path, perturbation: str, classes: Sequence[str], image_size: int,
                      subset: int | None = None, chunk: int = 64) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Frame sequences uint8 (n, T, S, S, 3) and labels int64 (n,) of one ImageNet-P perturbation
    (``<root>/<perturbation>/<wnid>/*.mp4``), decoded ``chunk`` videos at a time with PyAV. Every
    video must hold frames of ``image_size`` (ImageNet-P's are 224 px centre crops) and as many
    frames as the perturbation's first video; a shorter one is named as truncated. ``subset``
    takes the first N videos in class-balanced order."""
    paths, labels, found = image_folder_samples(Path(root) / perturbation, subset, extensions=(".mp4",))
    index = {name: i for i, name in enumerate(classes)}
    labels = torch.tensor([index[found[i]] for i in labels.tolist()], dtype=torch.long)
    length = None
    for start in range(0, len(paths), chunk):
        videos = [_read_video(path, image_size) for path in paths[start:start + chunk]]
        for path, video in zip(paths[start:start + chunk], videos):
            length = length or (paths[0], len(video))
            if len(video) != length[1]:
                short, count = (path, len(video)) if len(video) < length[1] else length
                raise OfficialDataError(f"ImageNet-P video {short} is truncated: {count} frames where the other "
                                        f"{perturbation} videos have {max(len(video), length[1])}")
        yield torch.from_numpy(np.stack(videos)), labels[start:start + chunk]


def _read_video(path: str, image_size: int) -> np.ndarray:
    """(T, S, S, 3) uint8 RGB frames of one video file (PyAV, imported here: only ImageNet-P needs it)."""
    import av

    try:
        with av.open(path) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise OfficialDataError(f"ImageNet-P video {path} cannot be read: {str(err).splitlines()[0]}") from None
    if len(frames) < 2:
        raise OfficialDataError(f"ImageNet-P video {path} is truncated: {len(frames)} frame(s)")
    if frames[0].shape[:2] != (image_size, image_size):
        raise OfficialDataError(f"ImageNet-P video {path} has {frames[0].shape[1]}x{frames[0].shape[0]} frames; "
                                f"the test images are {image_size}x{image_size}")
    return np.stack(frames)


def _check_severity(severity: int) -> None:
    if severity not in SEVERITIES:
        raise UserError(f"severity must be one of 1..5, got {severity!r}")


def _names(names: Iterable[str]) -> str:
    """A sorted list of what is there, for error messages."""
    return ", ".join(sorted(names)) or "none"


# memory maps kept open per process, the least recently used closed first: a run's two splits
# read 66 files, and every map holds a file descriptor
OPEN_MAPS = 128
_maps: OrderedDict[Path, tuple[tuple[int, ...], np.ndarray]] = OrderedDict()


def _load_npy(path: Path, kind: str, hint: Callable[[], str] = lambda: "") -> np.ndarray:
    """Memory-map a .npy file, turning numpy's errors into one-line OfficialDataErrors (``hint()``
    ends the not-found message). The map is reused while ``path`` is the same file: same inode,
    size and modification and change times, so a set written again under the same name is re-read."""
    try:
        status = os.stat(path)
    except OSError:
        status = None
    if status is None or not stat.S_ISREG(status.st_mode):
        raise OfficialDataError(f"{kind} file {path} not found{hint()}")
    identity = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    known = _maps.get(path)
    if known is not None and known[0] == identity:
        _maps.move_to_end(path)
        return known[1]
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OfficialDataError(f"{kind} file {path} is truncated or not a .npy array: {message}") from None
    _maps[path] = (identity, array)
    _maps.move_to_end(path)
    if len(_maps) > OPEN_MAPS:
        _maps.popitem(last=False)
    return array


def _open_npy(root: Path, name: str, kind: str, expected: str, valid: Callable[[tuple], bool]) -> np.ndarray:
    """Memory-map ``<root>/<name>.npy`` and check it is uint8 with a shape that is ``valid``."""
    path = root / f"{name}.npy"

    def available() -> str:
        return f"; available in {root}: {_names(p.stem for p in root.glob('*.npy') if p.stem != 'labels')}"

    array = _load_npy(path, kind, available)
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
