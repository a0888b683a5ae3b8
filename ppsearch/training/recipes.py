"""Training recipes: optimiser, learning-rate schedule and loss, as data plus two small functions.

* ``paper``: the seed paper's CIFAR ResNet recipe (He et al. 2016): SGD with Nesterov momentum
  0.9, batch 128, weight decay 1e-4, lr 0.1 divided by 10 at 40%, 60% and 80% of the epochs
  (epochs 80, 120 and 160 of 200).
* ``fast``: a short schedule for few epochs: batch 64, one-cycle (linear warm-up over the first
  20% of the steps from lr/10 to 0.05, then linear decay to 0), weight decay 5e-4, label smoothing
  0.1. Batch 64 and peak 0.05 came out best (within noise) of nine settings tried for ResNet-20 on
  2000 Fashion-MNIST images for 4 epochs.

* ``paper-imagenet``: the seed paper's ImageNet ResNets: batch 256, weight decay 5e-4, lr 0.1
  divided by 10 at epochs 30, 60 and 85 of 90.
* ``paper-densenet``: its DenseNets: batch 64, weight decay 1e-4, lr 0.1 divided by 10 at epochs
  150, 225 and 300 of 350.

The learning rate is a function of the global step only, so a resumed run needs no scheduler state.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from ..errors import UserError


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    lr: float
    batch_size: int
    weight_decay: float
    momentum: float = 0.9
    milestones: tuple[float, ...] = ()  # step schedule: fractions of training where lr drops 10x
    warmup: float = 0.0  # one-cycle: fraction of the steps spent warming up (0: step schedule)
    label_smoothing: float = 0.0

    def learning_rate(self, step: int, total_steps: int) -> float:
        progress = step / max(total_steps, 1)
        if self.warmup:
            if progress < self.warmup:
                return self.lr * (0.1 + 0.9 * progress / self.warmup)
            return self.lr * (1 - progress) / (1 - self.warmup)
        return self.lr * 0.1 ** sum(progress >= m for m in self.milestones)

    def optimizer(self, model: nn.Module) -> torch.optim.SGD:
        """SGD with Nesterov momentum. Push-pull ``alpha`` is kept out of weight decay, which would
        otherwise pull the inhibition strength towards 0 independently of the data."""
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if param.requires_grad:
                (no_decay if name.rsplit(".", 1)[-1] == "alpha" else decay).append(param)
        groups = [{"params": decay, "weight_decay": self.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, nesterov=True)


RECIPES = {r.name: r for r in (
    Recipe("paper", lr=0.1, batch_size=128, weight_decay=1e-4, milestones=(0.4, 0.6, 0.8)),
    Recipe("paper-imagenet", lr=0.1, batch_size=256, weight_decay=5e-4, milestones=(30 / 90, 60 / 90, 85 / 90)),
    Recipe("paper-densenet", lr=0.1, batch_size=64, weight_decay=1e-4, milestones=(150 / 350, 225 / 350, 300 / 350)),
    Recipe("fast", lr=0.05, batch_size=64, weight_decay=5e-4, warmup=0.2, label_smoothing=0.1),
)}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; allowed: {', '.join(RECIPES)}")
    return RECIPES[name]
