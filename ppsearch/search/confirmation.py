"""Confirmation seeds: after the search, the validation front's configurations and the papers' are
trained again with further seeds, so that the report can estimate them without the selected seed
and draw verdicts. Confirmation trials are Ray trials of the run, never trials of the study.

Two ways (``RunSettings.confirm_seeds``):

* a fixed count K: every front and paper configuration gets seeds ``seed+1 .. seed+K-1`` in one round;
* ``auto`` (racing): a round at a time, each round one more seed for every configuration that is
  part of an undecided (front, paper) pair, until every pair is decided or the configurations reach
  ``max_seeds``. From the second round on, each round ends with a look: the undecided pairs are
  compared (``uncertainty.decide``, Holm over them) at ``alpha / looks``, where ``looks`` is the
  number of rounds that can look; pairs with a verdict stop. Spending the level evenly over the
  looks keeps the chance of a false verdict at ``alpha`` whatever is decided when (Bonferroni over
  looks); the report draws its verdicts at the same ``alpha / looks``, and the suite checks the
  whole procedure's false-verdict rate by simulation.

Every decision is a function of the records on disk (a look uses the seeds of its round only), so
a run interrupted at any point replays the same rounds and runs exactly the seeds still missing.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import CONFIG_KEYS
from ..errors import UserError
from ..reporting.pareto import validation_front
from ..reporting.uncertainty import Verdict, compare, configuration_id, decide
from ..rundir import AUTO, FINAL_STATUSES, Column, RunSettings, TrialStatus, is_paper, racing_looks, search_trials

MIN_RACING_SEEDS = 3
Pair = tuple[str, str]  # (front configuration, paper configuration)


@dataclass(frozen=True)
class Race:
    """Where a racing confirmation stands: the round to run next (0: finished), the configurations
    that need its seed, and each pair's verdict with the round that decided it."""

    round: int
    needed: tuple[str, ...]
    decided: dict[Pair, tuple[Verdict, int]] = field(default_factory=dict)
    undecided: tuple[Pair, ...] = ()


def race(pairs: Sequence[Pair], attempted: Mapping[str, set[int]], values: Mapping[str, Mapping[int, np.ndarray]],
         alpha: float, max_seeds: int) -> Race:
    """Replay a racing confirmation from its records: ``attempted[c]`` holds the seed offsets of
    configuration ``c`` that have ended (0 is the search's seed), ``values[c][k]`` the objective
    values of those that completed (a searched configuration's offset 0 left out: it is biased)."""
    undecided = list(pairs)
    decided: dict[Pair, tuple[Verdict, int]] = {}
    for round_ in range(1, max_seeds):
        racing = sorted({c for pair in undecided for c in pair})
        needed = tuple(c for c in racing if round_ not in attempted.get(c, set()))
        if needed:
            return Race(round_, needed, decided, tuple(undecided))
        if round_ < 2:
            continue
        up_to = {c: np.array([v for k, v in sorted(values.get(c, {}).items()) if k <= round_]) for c in racing}
        tested = [(pair, compare(up_to[pair[0]], up_to[pair[1]], alpha)) for pair in undecided
                  if len(up_to[pair[0]]) and len(up_to[pair[1]])]
        verdicts = decide([c for _, c in tested], alpha, racing_looks(max_seeds))
        for (pair, _), verdict in zip(tested, verdicts):
            if verdict != Verdict.NOT_SHOWN:
                decided[pair] = (verdict, round_)
        undecided = [pair for pair in undecided if pair not in decided]
        if not undecided:
            break
    return Race(0, (), decided, tuple(undecided))


def check_confirmation(settings: RunSettings) -> None:
    """Refuse confirmation settings that cannot work, before anything is written."""
    count = settings.confirm_seeds
    if count != AUTO and not (count.isdigit() and int(count) >= 1):
        raise UserError(f"--confirm-seeds: must be an integer >= 1 (1: no confirmation) or {AUTO}, got {count!r}")
    if count == AUTO and (isinstance(settings.max_seeds, bool) or not isinstance(settings.max_seeds, int)
                          or settings.max_seeds < MIN_RACING_SEEDS):
        raise UserError(f"--max-seeds: --confirm-seeds {AUTO} needs room for at least {MIN_RACING_SEEDS} seeds per "
                        f"configuration (two unbiased ones beside the selected seed), got {settings.max_seeds!r}")
    if not 0 < settings.verdict_alpha < 0.5:
        raise UserError(f"--verdict-alpha: must be in (0, 0.5), got {settings.verdict_alpha!r}")


def pairs_to_confirm(table: pd.DataFrame, objectives: Sequence[str]) -> tuple[list[str], list[str]]:
    """The searched configurations on the validation front and the completed paper configurations:
    every report compares each of the former with each of the latter."""
    search = search_trials(table)
    done = search[search[Column.STATUS] == TrialStatus.COMPLETED]
    papers = sorted(done.loc[done[Column.ORIGIN].map(is_paper).astype(bool), Column.TRIAL_ID])
    front = sorted(set(validation_front(table, objectives)[Column.TRIAL_ID]) - set(papers))
    return front, papers


def next_confirmations(table: pd.DataFrame, settings: RunSettings) -> list[dict[str, Any]]:
    """The confirmation trials to run next (empty: confirmation is finished). Their ids
    (``<trial>-seed<k>``) are fixed, so a rerun finds those already done."""
    if settings.confirm_seeds == "1" or table.empty or Column.SEED not in table:
        return []
    front, papers = pairs_to_confirm(table, settings.objectives)
    search = search_trials(table).set_index(Column.TRIAL_ID)
    if settings.confirm_seeds == AUTO:
        state = race([(f, p) for f in front for p in papers], *_offsets(table, settings.objectives),
                     settings.verdict_alpha, settings.max_seeds)
        wanted = [(config, state.round) for config in state.needed]
    else:
        wanted = [(config, k) for config in front + papers for k in range(1, int(settings.confirm_seeds))]
    ended = set(table.loc[table[Column.STATUS].isin(FINAL_STATUSES), Column.TRIAL_ID])
    trials = []
    for config, offset in wanted:
        row = search.loc[config]
        seed = int(row[Column.SEED]) + offset
        trial_id = confirmation_id(config, seed)
        if trial_id not in ended:
            trials.append({**{k: row[k] for k in CONFIG_KEYS if k in row and _present(row[k])},
                           Column.ORIGIN: row[Column.ORIGIN], Column.TRIAL_ID: trial_id, Column.SEED: seed,
                           Column.CONFIG_ID: config})
    return trials


def confirmation_id(config: str, seed: int) -> str:
    return f"{config}-seed{seed}"


def _present(value: Any) -> bool:
    return not (isinstance(value, float) and np.isnan(value))


def _offsets(table: pd.DataFrame, objectives: Sequence[str]
             ) -> tuple[dict[str, set[int]], dict[str, dict[int, np.ndarray]]]:
    """Per configuration: the seed offsets that ended, and the objective values of those that
    completed (a searched configuration's selected seed left out)."""
    ended = table[table[Column.STATUS].isin(FINAL_STATUSES)]
    configs = configuration_id(ended)
    base = search_trials(table).set_index(Column.TRIAL_ID)[Column.SEED]
    attempted: dict[str, set[int]] = {}
    values: dict[str, dict[int, np.ndarray]] = {}
    for (_, row), config in zip(ended.iterrows(), configs):
        if config not in base:
            continue
        offset = int(row[Column.SEED]) - int(base[config])
        attempted.setdefault(config, set()).add(offset)
        selected = offset == 0 and not is_paper(row[Column.ORIGIN])
        measured = row[Column.STATUS] == TrialStatus.COMPLETED and pd.notna(row[list(objectives)]).all()
        if measured and not selected:
            values.setdefault(config, {})[offset] = row[list(objectives)].to_numpy(dtype=float)
    return attempted, values
