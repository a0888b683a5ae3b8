"""How sparse a trained model is (the seed paper's Figure 4): weight magnitudes and response
sparsity per convolution, push-pull and plain alike.

Sparsity is Hoyer's measure, (sqrt(n) - |x|_1 / |x|_2) / (sqrt(n) - 1): 0 when all n entries are
equal in magnitude, 1 when one entry holds everything. It ignores scale, so it compares layers of
different models trained with different weight norms. Responses are the layer outputs on clean
images (before BatchNorm; a trial's: the first images of its selection split), measured per image
and averaged; ``response_zero_fraction`` counts
exact zeros, which a push-pull layer produces where both push and pull are silent.
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import pandas as pd
import torch
import torch.nn as nn

from ..data.preprocess import to_model_input
from ..layers import PushPull2d

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def hoyer(x: torch.Tensor) -> torch.Tensor:
    """Hoyer sparsity of each row of a 2-D tensor."""
    n = x.shape[1]
    l1, l2 = x.abs().sum(1), x.norm(dim=1).clamp_min(1e-12)
    return (math.sqrt(n) - l1 / l2) / (math.sqrt(n) - 1)


class ResponseSparsity:
    """The sparsity of every convolution of ``model`` and of its responses to the first ``images``
    images of the forward passes made while :meth:`watching`, so that it can share a pass the model
    makes anyway (an evaluation's pass over the clean images). The responses are reduced batch by
    batch as they come and never kept: 256 images' responses of a ResNet-20 fill 200 MB."""

    def __init__(self, model: nn.Module, images: int) -> None:
        self.images = images
        self._convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        self._seen = dict.fromkeys(self.layers, 0)
        self._sparsity: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers}  # per image
        self._zeros = dict.fromkeys(self.layers, 0)
        self._entries = dict.fromkeys(self.layers, 0)

    @property
    def layers(self) -> list[str]:
        return [name for name, _ in self._convs]

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Record the responses of the forward passes made inside the block."""
        handles = [m.register_forward_hook(functools.partial(self._record, name)) for name, m in self._convs]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _record(self, name: str, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        wanted = self.images - self._seen[name]
        if wanted <= 0:
            return
        response = output[:wanted].float().flatten(1)
        self._seen[name] += len(response)
        self._sparsity[name].append(hoyer(response))
        # exact counts: the fraction is the same whichever batches the images came in
        # (count_nonzero: twice as fast as summing the booleans into int64 on a CPU)
        self._zeros[name] += int(torch.count_nonzero(response == 0))
        self._entries[name] += response.numel()

    def table(self) -> pd.DataFrame:
        """One row per convolution (in module order) that the watched passes reached: its kind,
        weight-magnitude quantiles and sparsity, and the sparsity of its responses."""
        rows = []
        for name, m in self._convs:
            if not self._sparsity[name]:  # a conv the forward pass never reached
                continue
            weights = m.weight.detach().float().abs().flatten()
            quantiles = torch.quantile(weights, torch.tensor(QUANTILES, device=weights.device)).tolist()
            rows.append({
                "layer": name,
                "kind": "push_pull" if isinstance(m, PushPull2d) else "conv",
                "weights": weights.numel(),
                "weight_mean_abs": weights.mean().item(),
                **{f"weight_abs_q{int(q * 100)}": v for q, v in zip(QUANTILES, quantiles)},
                "weight_sparsity": hoyer(weights[None]).item(),
                "response_sparsity": torch.cat(self._sparsity[name]).mean().item(),
                "response_zero_fraction": self._zeros[name] / self._entries[name],
            })
        return pd.DataFrame(rows)


@torch.inference_mode()
def sparsity_table(model: nn.Module, images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                   device: str | torch.device = "cpu") -> pd.DataFrame:
    """One row per convolution of ``model`` (in module order): its kind, weight-magnitude quantiles
    and sparsity, and the sparsity of its responses to uint8 (N, H, W, C) ``images``, in a pass of
    its own (:class:`ResponseSparsity` shares one)."""
    model = model.eval().to(device)
    sparsity = ResponseSparsity(model, len(images))
    with sparsity.watching():
        model(to_model_input(images.to(device), mean, std))
    return sparsity.table()
