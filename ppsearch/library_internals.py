"""The one module where ppsearch relies on a private attribute of a library.

``tests/test_library_internals.py`` pins the behaviour relied on, so an upgrade that changes it
fails the tests instead of silently serving stale results; pyproject's ranges admit only the tested
release series of these libraries.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the layers import this module; they must not need optuna
    import optuna


def tensor_version(tensor: torch.Tensor) -> int:
    """torch's counter of in-place modifications of ``tensor`` (``Tensor._version``): it changes
    whenever the data changes in place (an optimiser step, ``load_state_dict``, ``copy_``), which
    no public API reports. Push-pull layers key their cached pull kernels on it."""
    return tensor._version


def study_trial(study: optuna.Study, number: int) -> optuna.Trial:
    """A writable handle on trial ``number`` of ``study`` (one ``study.ask`` handed out, possibly by
    an earlier driver): Optuna's public ``Trial`` is built from the storage's trial id
    (``FrozenTrial._trial_id``), which no public API gives for a trial number. The searcher sets a
    trial's constraints through it before telling the study its result."""
    import optuna

    return optuna.Trial(study, study.get_trials(deepcopy=False)[number]._trial_id)
