"""How a search chooses and stops trials, by name: the Optuna samplers and the schedulers.

The command line offers these names as its choices; nothing here imports optuna, Ray or torch until
a sampler is made.
"""
from __future__ import annotations

import enum
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    import optuna


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    with warnings.catch_warnings():  # multivariate and group are flagged experimental; conditional spaces need them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed)


def _nsga2(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


def _random(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe, "nsga2": _nsga2, "gp": _gp, "random": _random}
# the samplers that read a trial's constraints (Optuna's Trial.set_constraint) when they choose the next
CONSTRAINED_SAMPLERS = ("tpe", "nsga2", "gp")


class Scheduler(enum.StrEnum):
    MOASHA = "moasha"  # multi-objective ASHA: stops trials dominated at a rung (ppsearch.search.moasha)
    NONE = "none"  # every trial trains its whole budget


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](seed)


def check_constrained(name: str) -> None:
    """Refuse constraints with a sampler that ignores them (it would draw infeasible designs as
    often as feasible ones, each measured and thrown away)."""
    if name not in CONSTRAINED_SAMPLERS:
        raise UserError(f"--constraint: sampler {name!r} does not use constraints (it would keep drawing designs "
                        f"that break them); use one that does: {', '.join(CONSTRAINED_SAMPLERS)}")


def check_scheduler(name: str) -> Scheduler:
    if name not in tuple(Scheduler):
        raise UserError(f"unknown scheduler {name!r}; allowed: {', '.join(Scheduler)}")
    return Scheduler(name)
