"""Images kept as files and decoded as they are used: the streaming data source.

A 224x224 uint8 copy of ImageNet's training set takes ~190 GB, so a dataset whose decoded size is
over the memory budget is held as :class:`ImageFiles`: a stand-in for the uint8 (N, S, S, 3) image
tensor of the in-memory path. Indexing and slicing it decodes nothing; ``.to(device)`` decodes
(PIL, threads), so the evaluator, the -C/-P generator and the sparsity probe take either. The
trainer draws its epochs through :func:`epoch_batches`: the same seeded order as in memory, the
batches decoded by ``torch.utils.data.DataLoader`` worker processes, then augmented whole on the
device as in memory. The decoding is the in-memory path's (:func:`decode_images`), so both paths
train on the same bytes in the same order.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ..errors import UserError
from .names import BAD_IMAGE_POLICIES, STREAM_MODES

IMAGENET_CROP_PCT = 0.875  # the standard 256 -> 224 evaluation crop
PREFETCH_BATCHES = 2  # per loader worker, memory budget permitting


class UnreadableImage(UserError):
    """An image file that cannot be decoded; the message names it."""


@dataclasses.dataclass(frozen=True)
class DataAccess:
    """How this machine reads a dataset: where its files are, whether an image-folder dataset is
    decoded into memory or streamed (``auto``: streamed when its decoded size is over the memory
    budget), and what a training epoch does with an image it cannot decode (``fail`` the trial, or
    ``skip`` it and count it in the trial's record). The budget is shared by ``sharers``
    processes of one machine that each hold a copy (a search's concurrent trials on a node).
    Facts of the machine, not of what is measured."""

    data_dir: str | None = None
    stream: str = "auto"
    memory_budget_gib: float | None = None  # None: half of this machine's physical memory
    bad_images: str = "fail"
    sharers: int = 1

    def __post_init__(self) -> None:
        if self.stream not in STREAM_MODES:
            raise UserError(f"--stream must be one of {', '.join(STREAM_MODES)}, got {self.stream!r}")
        if self.bad_images not in BAD_IMAGE_POLICIES:
            raise UserError(f"--bad-images must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {self.bad_images!r}")
        if self.memory_budget_gib is not None and not self.memory_budget_gib > 0:
            raise UserError(f"--memory-budget must be a positive number of GiB, got {self.memory_budget_gib!r}")

    @property
    def memory_budget(self) -> int:
        """One process's share, in bytes."""
        if self.memory_budget_gib is not None:
            machine = int(self.memory_budget_gib * 2**30)
        else:
            machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
        return machine // self.sharers


def decode_image(path: str, image_size: int, crop_pct: float = IMAGENET_CROP_PCT) -> np.ndarray:
    """One image as uint8 (S, S, 3): decoded with PIL and converted to RGB, the shorter side resized
    to ``floor(image_size / crop_pct)`` (PIL bilinear) and the centre cropped to ``image_size``, as
    the standard ImageNet evaluation transform does (ImageNet-C, already cropped, uses
    ``crop_pct=1``). Raises :class:`UnreadableImage` naming the file."""
    try:
        with Image.open(path) as file:
            image = file.convert("RGB")
    except (OSError, Image.DecompressionBombError) as err:  # a bomb: far more pixels than a dataset's image
        if isinstance(err, OSError) and err.errno is not None:  # the file system's (missing, a link loop), not PIL's
            raise UnreadableImage(f"cannot read image {path}: {err.strerror}") from None
        raise UnreadableImage(f"cannot decode image {path}: {err}") from None
    image = TF.resize(image, [math.floor(image_size / crop_pct)])
    return np.asarray(TF.center_crop(image, [image_size, image_size]))


def decode_images(paths: Sequence[str], image_size: int, crop_pct: float = IMAGENET_CROP_PCT) -> torch.Tensor:
    """uint8 (N, S, S, 3) images of ``paths`` (:func:`decode_image`), decoded by threads: PIL
    decodes and resizes without holding the GIL, so this scales with the cores."""
    images = torch.empty((len(paths), image_size, image_size, 3), dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for i, image in enumerate(pool.map(lambda p: decode_image(p, image_size, crop_pct), paths)):
            images.numpy()[i] = image
    return images


class ImageFiles:
    """uint8 (N, S, S, 3) images held as file paths: indexing selects files, ``.to(device)``
    decodes. ``memory_budget`` (bytes) bounds the decoded batches a training epoch keeps in flight;
    ``bad_images`` is the :class:`DataAccess` policy for an undecodable file met while training."""

    dtype = torch.uint8
    ndim = 4

    def __init__(self, paths: Sequence[str], image_size: int, *, crop_pct: float = IMAGENET_CROP_PCT,
                 memory_budget: int, bad_images: str = "fail") -> None:
        self.paths = list(paths)
        self.image_size, self.crop_pct = image_size, crop_pct
        self.memory_budget, self.bad_images = memory_budget, bad_images

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), self.image_size, self.image_size, 3))

    @property
    def nbytes(self) -> int:
        """Decoded, in memory."""
        return math.prod(self.shape)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: slice | torch.Tensor | Sequence[int]) -> ImageFiles:
        if isinstance(index, slice):
            paths = self.paths[index]
        else:
            paths = [self.paths[i] for i in torch.as_tensor(index).reshape(-1).tolist()]
        return ImageFiles(paths, self.image_size, crop_pct=self.crop_pct, memory_budget=self.memory_budget,
                          bad_images=self.bad_images)

    def to(self, device: str | torch.device, non_blocking: bool = False) -> torch.Tensor:
        return decode_images(self.paths, self.image_size, self.crop_pct).to(device, non_blocking=non_blocking)

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} files at {self.image_size}x{self.image_size})"


Images = torch.Tensor | ImageFiles


@dataclasses.dataclass(frozen=True)
class LoaderPlan:
    workers: int
    prefetch: int  # batches per worker


def plan_loader(images: Images, batch: int, workers: int | None = None) -> LoaderPlan | None:
    """How an epoch of ``batch``-image batches streams ``images`` within their memory budget:
    ``workers`` decoding processes (default: this process's torch threads) with up to
    :data:`PREFETCH_BATCHES` batches each, fewer where the budget is tight; None for images in
    memory. A budget below two batches (one training, one decoding) is a :class:`UserError`."""
    if not isinstance(images, ImageFiles):
        return None
    batch_bytes = batch * math.prod(images.shape[1:])
    fits = images.memory_budget // batch_bytes - 1  # batches in flight beside the one being trained on
    if fits < 1:
        raise UserError(f"memory budget {images.memory_budget / 2**30:.3g} GiB (per process) is too small to stream batches of "
                        f"{batch} images at {images.image_size}x{images.image_size} (two need "
                        f"{2 * batch_bytes / 2**30:.3g} GiB); raise --memory-budget")
    workers = min(workers or torch.get_num_threads(), fits)
    return LoaderPlan(workers, min(PREFETCH_BATCHES, fits // workers))


def epoch_batches(images: Images, labels: torch.Tensor, order: torch.Tensor, batch: int, steps: int,
                  device: torch.device, workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """One epoch's ``steps`` batches of ``batch`` images taken in ``order`` (on ``device``), as
    (uint8 images, labels, images skipped). Images in memory must already be on ``device``; streamed
    ones are decoded by :func:`plan_loader`'s workers, the same bytes as in memory. An undecodable
    file raises :class:`UnreadableImage`, or under the ``skip`` policy leaves its batch one image
    short and is counted."""
    plan = plan_loader(images, batch, workers)
    if plan is None:
        for step in range(steps):
            index = order[step * batch:(step + 1) * batch]
            yield images[index], labels[index], 0
        return
    index_batches = order[:steps * batch].view(steps, batch).tolist()
    loader = torch.utils.data.DataLoader(
        _Decoder(images), batch_sampler=index_batches, collate_fn=_as_decoded, num_workers=plan.workers,
        prefetch_factor=plan.prefetch, pin_memory=device.type == "cuda")
    for index, (decoded, kept, failures) in zip(index_batches, loader, strict=True):
        if failures and images.bad_images == "fail":
            raise UnreadableImage(f"{failures[0]} (met while training; --bad-images skip skips and counts such files)")
        chosen = torch.as_tensor(index)[kept]
        yield decoded.to(device, non_blocking=True), labels[chosen.to(labels.device)], len(failures)


class _Decoder(torch.utils.data.Dataset):
    """What the loader's workers run: a batch of files decoded at once (``__getitems__``), the
    failures named rather than raised, so that the trainer applies the policy in one place."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        decoded, kept, failures = [], [], []
        for position, i in enumerate(indices):
            try:
                decoded.append(decode_image(self.files.paths[i], self.files.image_size, self.files.crop_pct))
                kept.append(position)
            except UnreadableImage as error:
                failures.append(str(error))
        size = self.files.image_size
        images = torch.from_numpy(np.stack(decoded)) if decoded else torch.empty((0, size, size, 3), dtype=torch.uint8)
        return images, torch.as_tensor(kept, dtype=torch.long), failures


def _as_decoded(batch: tuple) -> tuple:
    """The loader's collation: :class:`_Decoder` hands over whole batches already."""
    return batch
