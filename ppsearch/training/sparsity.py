"""How sparse a trained model is (the seed paper's Figure 4): weight magnitudes and response
sparsity per convolution, push-pull and plain alike.

Sparsity is Hoyer's measure, (sqrt(n) - |x|_1 / |x|_2) / (sqrt(n) - 1): 0 when all n entries are
equal in magnitude, 1 when one entry holds everything. It ignores scale, so it compares layers of
different models trained with different weight norms. Responses are the layer outputs on clean
test images (before BatchNorm), measured per image and averaged; ``response_zero_fraction`` counts
exact zeros, which a push-pull layer produces where both push and pull are silent.
"""
from __future__ import annotations

import math

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


@torch.inference_mode()
def sparsity_table(model: nn.Module, images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                   device: str | torch.device = "cpu") -> pd.DataFrame:
    """One row per convolution of ``model`` (in module order): its kind, weight-magnitude quantiles
    and sparsity, and the sparsity of its responses to uint8 (N, H, W, C) ``images``."""
    model = model.eval().to(device)
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    responses: dict[str, list[torch.Tensor]] = {name: [] for name, _ in convs}
    handles = [m.register_forward_hook(lambda m, i, out, name=name: responses[name].append(out.float().flatten(1)))
               for name, m in convs]
    try:
        with torch.inference_mode():
            model(to_model_input(images.to(device), mean, std))
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, m in convs:
        if not responses[name]:  # a conv the forward pass never reached
            continue
        weights = m.weight.detach().float().abs().flatten()
        response = torch.cat(responses[name])
        rows.append({
            "layer": name,
            "kind": "push_pull" if isinstance(m, PushPull2d) else "conv",
            "weights": weights.numel(),
            "weight_mean_abs": weights.mean().item(),
            **{f"weight_abs_q{int(q * 100)}": v
               for q, v in zip(QUANTILES, torch.quantile(weights, torch.tensor(QUANTILES, device=weights.device)).tolist())},
            "weight_sparsity": hoyer(weights[None]).item(),
            "response_sparsity": hoyer(response).mean().item(),
            "response_zero_fraction": (response == 0).double().mean().item(),
        })
    return pd.DataFrame(rows)
