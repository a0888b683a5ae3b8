"""Image classification datasets held in memory as uint8 tensors behind one interface.

Every dataset is returned as a :class:`Dataset` of uint8 (N, H, W, C) images (NHWC, contiguous:
the corruptions and a ``.to(device)`` take it in one piece) and int64 labels.

* ``fashion-mnist`` (the default of the project): read from ``data_dir``, else from Debian's
  ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``), else from
  ppsearch's cache folder, where torchvision downloads it when ``download=True``. The 28x28
  images are padded with zeros to 32x32 so that CIFAR architectures and corruptions apply.
* ``cifar10``, ``cifar100``: torchvision's python-pickle layout under ``data_dir``.
* ``imagenet``: an ImageFolder root with ``train/<wnid>/*`` and ``val/<wnid>/*``, resized
  (shorter side to ``image_size * 8 / 7``) and centre-cropped to ``image_size``. A 224x224 uint8
  copy of the training set takes ~190 GB: a split set whose decoded size is over the memory budget
  is streamed from its files (:mod:`ppsearch.data.streaming`) unless told otherwise.
"""
from __future__ import annotations

import gzip
import math
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..errors import UserError
from .names import DATASETS
from .streaming import DataAccess, ImageFiles, Images

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path.home() / ".cache" / "ppsearch" / "datasets"
IMAGENET_SIZE = 224  # imagenet's default image size; the other datasets are 32x32

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetNotFoundError(UserError):
    """A dataset's files are not where they were looked for; the message says how to get them."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test splits as uint8 (N, H, W, C) images (tensors, or :class:`ImageFiles` where
    streamed) and int64 label tensors."""

    name: str
    train_images: Images
    train_labels: torch.Tensor
    test_images: Images
    test_labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise ValueError(f"{split}_images must be uint8 (N, H, W, C), "
                                 f"got {images.dtype} {tuple(images.shape)}")
            if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise ValueError(f"{split}_labels must be int64 ({images.shape[0]},), "
                                 f"got {labels.dtype} {tuple(labels.shape)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={tuple(self.train_images.shape)}, "
                f"test={tuple(self.test_images.shape)}, num_classes={self.num_classes}, streamed={self.streamed})")

    @property
    def streamed(self) -> bool:
        return isinstance(self.train_images, ImageFiles)


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    channels: int | None = None,
    download: bool = False,
    *,
    subset: int | None = None,
    image_size: int | None = None,
    test_only: bool = False,
    access: DataAccess = DataAccess(),
) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) (with ``test_only``, an empty training
    split: ImageNet's training images are then not read).

    ``channels``: 1 or 3; ``None`` keeps the dataset's own (1 for fashion-mnist, 3 otherwise);
    fashion-mnist is replicated to 3 channels on request. ``subset`` keeps the first N images of
    each split (for imagenet in a class-balanced order, and only those N are read).
    ``image_size`` (default :data:`IMAGENET_SIZE`) applies to imagenet only; the other datasets are
    32x32. ``access`` says whether imagenet is decoded into memory or streamed from its files (the
    other datasets are arrays, always in memory). Raises :class:`DatasetNotFoundError` when the
    files are missing and ``download`` is off.
    """
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    if channels not in (None, 1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels!r}")
    if subset is not None and subset < 1:
        raise UserError(f"subset must be a positive number of images, got {subset!r}")
    if image_size not in (None, native_image_size(name)) and name != "imagenet":
        raise UserError(f"image size applies to imagenet only; {name} images are 32x32")
    if access.stream == "always" and name != "imagenet":
        raise UserError(f"streaming applies to image-folder datasets (imagenet); {name} is read into memory")
    if channels == 1 and name != "fashion-mnist":
        raise UserError(f"{name} has 3 channels; channels=1 is available for fashion-mnist only")
    root = Path(data_dir).expanduser() if data_dir is not None else None

    if name == "imagenet":
        if download:
            raise UserError("imagenet cannot be downloaded; pass data_dir pointing at your ImageFolder copy")
        return _load_imagenet(root, subset, image_size or IMAGENET_SIZE, test_only, access)
    if name == "fashion-mnist":
        splits, classes = _load_fashion_mnist(root, download), tuple(torchvision.datasets.FashionMNIST.classes)
    else:
        splits, classes = _load_cifar(name, root, download)
    if subset is not None:
        splits = {k: (x[:subset].clone(), y[:subset].clone()) for k, (x, y) in splits.items()}
    if channels == 3 and name == "fashion-mnist":
        splits = {k: (x.expand(-1, -1, -1, 3).contiguous(), y) for k, (x, y) in splits.items()}
    return Dataset(name, *splits["train"], *splits["test"], classes)


def native_image_size(name: str) -> int:
    """The image size a dataset is read at unless told otherwise."""
    return IMAGENET_SIZE if name == "imagenet" else 32


# ---------------------------------------------------------------- Fashion-MNIST


def _read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (optionally gzipped): big-endian header of 4-byte dims, then uint8 data."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:  # a truncated or garbled archive
        raise UserError(f"{path} is damaged: {err}") from None
    except OSError as err:
        raise UserError(f"{path} cannot be read: {err.strerror}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08 or len(data) < 4 + 4 * data[3]:
        raise UserError(f"{path} is not a uint8 idx file")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != math.prod(shape):
        raise UserError(f"{path} is truncated: header says {shape}, file has {len(data) - offset} bytes of data")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def _find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four Fashion-MNIST files in ``folder``, gzipped or not; None if any is missing. A
    directory (or anything else) under a file's name is refused, not taken for a missing file."""
    found = {}
    for stem in (s for pair in _FASHION_FILES.values() for s in pair):
        candidates = [folder / f"{stem}.gz", folder / stem]
        for path in candidates:
            if path.exists() and not path.is_file():
                raise UserError(f"{path} is {'a directory' if path.is_dir() else 'not a regular file'}, "
                                "not a Fashion-MNIST idx file")
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found[stem] = path
    return found


def _load_fashion_mnist(root: Path | None, download: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    target = root if root is not None else CACHE_DIR
    # torchvision keeps its download under <root>/FashionMNIST/raw.
    searched = [root, root / "FashionMNIST" / "raw"] if root is not None else [
        DEBIAN_FASHION_MNIST, CACHE_DIR / "FashionMNIST" / "raw"]
    files = next((f for f in map(_find_idx_files, searched) if f is not None), None)
    if files is None and download:
        _download(torchvision.datasets.FashionMNIST, "fashion-mnist", target)
        files = _find_idx_files(target / "FashionMNIST" / "raw")
    if files is None:
        raise DatasetNotFoundError(
            f"fashion-mnist not found in {' or '.join(map(str, searched))}; install it with "
            "`apt-get install dataset-fashion-mnist`, pass --data-dir, or allow download")
    splits = {}
    for split, (image_stem, label_stem) in _FASHION_FILES.items():
        raw, labels = _read_idx(files[image_stem]), _read_idx(files[label_stem])
        if raw.ndim != 3 or raw.shape[1:] != (28, 28):
            raise UserError(f"{files[image_stem]} holds an array of shape {raw.shape}; Fashion-MNIST images are (N, 28, 28)")
        if labels.shape != raw.shape[:1]:
            raise UserError(f"{files[label_stem]} holds labels of shape {labels.shape}; "
                            f"{files[image_stem].name} holds {raw.shape[0]} images")
        images = torch.zeros((raw.shape[0], 32, 32, 1), dtype=torch.uint8)
        images.numpy()[:, 2:30, 2:30, 0] = raw  # centred zero padding 28 -> 32
        splits[split] = images, torch.from_numpy(labels.astype(np.int64))
    return splits


# ---------------------------------------------------------------- CIFAR


def _load_cifar(name: str, root: Path | None, download: bool) -> tuple[dict, tuple[str, ...]]:
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    root = root if root is not None else CACHE_DIR
    if download:
        _download(cls, name, root)
    folder = root / cls.base_folder
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"{name} not found in {root} (expects {cls.base_folder}/ there); pass --data-dir, or allow download")
    splits = {split: _read_cifar_batches(name, folder, files) for split, files in (("train", cls.train_list),
                                                                                   ("test", cls.test_list))}
    meta_path = folder / cls.meta["filename"]
    meta = _read_cifar_file(name, meta_path, cls.meta["md5"])
    if not isinstance(meta, dict) or not isinstance(meta.get(cls.meta["key"]), list):
        raise _damaged_cifar(name, meta_path, f"it holds no {cls.meta['key']}")
    return splits, tuple(meta[cls.meta["key"]])


def _read_cifar_batches(name: str, folder: Path, files: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of a CIFAR folder: its batch ``files`` (name, MD5) in order, as uint8 NHWC images
    and int64 labels."""
    images, labels = [], []
    for file, md5 in files:
        path = folder / file
        batch = _read_cifar_file(name, path, md5)
        data = batch.get("data") if isinstance(batch, dict) else None
        # CIFAR-100 calls its class labels fine_labels
        targets = batch.get("labels", batch.get("fine_labels")) if isinstance(batch, dict) else None
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3 * 32 * 32
                and isinstance(targets, list) and len(targets) == len(data)):
            raise _damaged_cifar(name, path, "it holds no uint8 (N, 3072) images with N labels")
        images.append(data)
        labels.extend(targets)
    # each row is a 32x32 red plane, then green, then blue
    nhwc = np.vstack(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return torch.from_numpy(np.ascontiguousarray(nhwc)), torch.as_tensor(labels, dtype=torch.int64)


def _read_cifar_file(name: str, path: Path, md5: str) -> Any:
    """The unpickled content of one file of a CIFAR folder. Unpickling can run code, so, as
    torchvision does, only a file with the published checksum is unpickled (torchvision's own check,
    which tests replace to admit stand-in files)."""
    if not path.exists():
        raise DatasetNotFoundError(f"{name} not found: {path} is missing; pass --data-dir, or allow download")
    if not path.is_file():
        raise UserError(f"{name}: {path} is {'a directory' if path.is_dir() else 'not a regular file'}, "
                        "not a CIFAR file")
    try:
        if not torchvision.datasets.cifar.check_integrity(str(path), md5):
            raise _damaged_cifar(name, path, "its MD5 checksum is not the published file's")
        with path.open("rb") as file:
            content = file.read()
    except OSError as err:
        raise UserError(f"{name}: {path} cannot be read: {err.strerror}") from None
    try:
        return pickle.loads(content, encoding="latin1")
    except Exception as err:  # noqa: BLE001 - unpickling damaged bytes raises any type (see pickle's docs)
        raise _damaged_cifar(name, path, f"not a readable pickle: {err}") from None


def _damaged_cifar(name: str, path: Path, why: str) -> UserError:
    return UserError(f"{name}: {path} is damaged ({why}); replace it with a fresh copy, or allow download")


def _download(cls: type, name: str, root: Path) -> None:
    try:
        cls(str(root), train=True, download=True)
    except (RuntimeError, OSError) as err:
        raise DatasetNotFoundError(f"downloading {name} into {root} failed: {err}") from None


# ---------------------------------------------------------------- ImageNet / image folders


def _load_imagenet(root: Path | None, subset: int | None, image_size: int, test_only: bool,
                   access: DataAccess) -> Dataset:
    if root is None:
        raise DatasetNotFoundError(
            "imagenet needs --data-dir pointing at an ImageFolder root with train/ and val/")
    samples = {split: image_folder_samples(root / folder, 0 if test_only and split == "train" else subset)
               for split, folder in (("train", "train"), ("test", "val"))}
    if samples["train"][2] != samples["test"][2]:
        raise UserError(f"{root}/train and {root}/val hold different class folders")
    files = {split: ImageFiles(paths, image_size, memory_budget=access.memory_budget, bad_images=access.bad_images)
             for split, (paths, _, _) in samples.items()}
    decoded_bytes = sum(f.nbytes for f in files.values())
    if access.stream == "never" or (access.stream == "auto" and decoded_bytes <= access.memory_budget):
        images = {split: f.to("cpu") for split, f in files.items()}
    else:
        images = files
    return Dataset("imagenet", images["train"], samples["train"][1], images["test"], samples["test"][1],
                   samples["train"][2])


def image_folder_samples(root: Path, subset: int | None = None, extensions: tuple[str, ...] = IMG_EXTENSIONS
                         ) -> tuple[list[str], torch.Tensor, tuple[str, ...]]:
    """The files (images, or ``extensions``) of an ImageFolder tree, their labels (indices into the
    sorted class folder names) and the classes. Files are taken round-robin over the classes (the
    k-th of every class before any (k+1)-th), so the first ``subset`` are class-balanced and
    deterministic."""
    existing = next(p for p in (root, *root.parents) if p.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        where = "" if existing == root else f"ImageFolder {root}: "
        raise UserError(f"{where}{existing} is a file, not {'a' if where else 'an ImageFolder'} directory")
    try:
        folder = torchvision.datasets.DatasetFolder(str(root), loader=str, extensions=extensions)
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"no ImageFolder at {root}: {err}") from None
    except OSError as err:  # a folder of the tree that may not be read
        raise UserError(f"ImageFolder {root}: {err.filename} cannot be read: {err.strerror}") from None
    paths = [p for p, _ in folder.samples]
    labels = np.asarray(folder.targets, dtype=np.int64)
    # Samples are grouped by class; rank each within its class and order by (rank, class).
    first_of_class = np.searchsorted(labels, labels, side="left")
    order = np.lexsort((labels, np.arange(len(labels)) - first_of_class))[:subset]
    return [paths[i] for i in order], torch.from_numpy(labels[order]), tuple(folder.classes)
