"""ppsearch: where in a ConvNet should push-pull inhibition go, and what does it cost?

The public API is importable from here; it is loaded on first use, so that reading a run's
results (``open_run``, reports, ``pick``) does not import torch.
"""
import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BlurPool2d": "ppsearch.layers",
    "Design": "ppsearch.config",
    "PushPull2d": "ppsearch.layers",
    "Run": "ppsearch.runs",
    "TrainingRun": "ppsearch.runs",
    "apply_design": "ppsearch.models.apply",
    "build_model": "ppsearch.models",
    "create_push_pull": "ppsearch.layers",
    "corrupt": "ppsearch.robustness.corruptions",
    "load_model": "ppsearch.models.model_file",
    "open_run": "ppsearch.runs",
    "perturb": "ppsearch.robustness.perturbations",
    "pushpullify": "ppsearch.models.surgery",
    "run": "ppsearch.launch",
    "train": "ppsearch.launch",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ppsearch' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
