"""Confirmation seeds: after the search, the validation front's configurations and the papers' are
trained again with further seeds, so that the report can estimate them without the selected seed
and draw verdicts. Confirmation trials are Ray trials of the run, never trials of the study.

Two ways (``RunSettings.confirm_seeds``):

* a fixed count K: every front and paper configuration gets seeds ``seed+1 .. seed+K-1`` in one round;
* ``auto`` (racing, ``selection.racing``): a round at a time, each round one more seed for every
  configuration of an undecided (front, paper) pair, until every pair is decided or the
  configurations reach ``max_seeds``.

Every decision is a function of the records on disk, so a run interrupted at any point replays the
same rounds and runs exactly the seeds still missing.
"""
from __future__ import annotations

import pandas as pd

from ..config import typed_config
from ..rundir import AUTO, FINAL_STATUSES, Assignment, Column, RunSettings, search_trials
from ..selection.racing import pairs_to_confirm, replay


def next_confirmations(table: pd.DataFrame, settings: RunSettings) -> list[Assignment]:
    """The confirmation trials to run next (empty: confirmation is finished). Their ids
    (``<trial>-seed<k>``) are fixed, so a rerun finds those already done."""
    if settings.confirm_seeds == "1" or table.empty or Column.SEED not in table:
        return []
    search = search_trials(table).set_index(Column.TRIAL_ID)
    if settings.confirm_seeds == AUTO:
        state = replay(table, settings)
        wanted = [(config, state.round) for config in state.needed]
    else:
        front, papers = pairs_to_confirm(table, settings.objectives)
        wanted = [(config, k) for config in front + papers for k in range(1, int(settings.confirm_seeds))]
    ended = set(table.loc[table[Column.STATUS].isin(FINAL_STATUSES), Column.TRIAL_ID])
    trials = []
    for config, offset in wanted:
        row = search.loc[config]
        seed = int(row[Column.SEED]) + offset
        trial_id = confirmation_id(config, seed)
        if trial_id not in ended:
            trials.append(Assignment(typed_config(row), trial_id, row[Column.ORIGIN], seed, config))
    return trials


def confirmation_id(config: str, seed: int) -> str:
    return f"{config}-seed{seed}"

