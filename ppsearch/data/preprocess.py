"""uint8 images (N, H, W, C) -> the normalised float batch a model takes, on the images' device."""
from __future__ import annotations

import torch

# per-channel mean and std of the training sets, in [0, 1] units
DATASET_STATS = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def normalisation(dataset: str, in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std for a model with ``in_chans`` inputs trained on ``dataset``."""
    mean, std = DATASET_STATS[dataset]
    if len(mean) != in_chans:  # grey statistics for colour input, or colour averaged to grey
        mean, std = (sum(mean) / len(mean),) * in_chans, (sum(std) / len(std),) * in_chans
    return mean, std


def to_model_input(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Float (N, C, H, W) batch in channels_last layout; colour is averaged to grey for 1-channel
    models and grey replicated for colour models (corrupted sets are always RGB)."""
    x = images.permute(0, 3, 1, 2).float()  # NHWC storage: this is already channels_last
    in_chans = len(mean)
    if x.shape[1] != in_chans:
        x = x.mean(1, keepdim=True) if in_chans == 1 else x.expand(-1, in_chans, -1, -1)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1) * 255
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1) * 255
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)
