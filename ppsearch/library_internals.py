"""The one module where ppsearch relies on a private attribute of a library.

``tests/test_library_internals.py`` pins the behaviour relied on, so an upgrade that changes it
fails the tests instead of silently serving stale results; pyproject's ranges admit only the tested
release series of these libraries.
"""
from __future__ import annotations

import torch


def tensor_version(tensor: torch.Tensor) -> int:
    """torch's counter of in-place modifications of ``tensor`` (``Tensor._version``): it changes
    whenever the data changes in place (an optimiser step, ``load_state_dict``, ``copy_``), which
    no public API reports. Push-pull layers key their cached pull kernels on it."""
    return tensor._version
