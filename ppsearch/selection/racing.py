"""Racing: the statistics of adaptive confirmation (``--confirm-seeds auto``).

After the search, every (searched front configuration, paper configuration) pair is undecided. A
round gives one more seed to every configuration of an undecided pair; from the second round on
(two unbiased seeds a side) each round ends with a look: the undecided pairs are compared
(``uncertainty.compare``) with Holm's correction over them at that look's level, and a pair with a
verdict is decided and stops. The looks spend the level ``alpha`` (``look_levels``): half of it
evenly over every look but the last, half at the last, so that a clear difference stops early and
a close one keeps most of a fixed design's power at the end. A false verdict needs a true null
rejected at some look, so by the union bound over the looks (and Holm's guarantee within each)
the chance of any false verdict is at most ``alpha`` whatever is decided when; the suite checks it
by simulation (``simulate_race``).

The verdicts of a racing run are the decisions of its looks, replayed from the records (``replay``):
a look uses the seeds of its round only, so the same records always give the same decisions, and a
run interrupted at any point continues exactly where it was.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..rundir import FINAL_STATUSES, Column, RunSettings, TrialStatus, is_paper, search_trials
from .pareto import reported_trials
from .uncertainty import Verdict, compare, configuration_id, cost_tolerances, decide, holm

Pair = tuple[str, str]  # (searched front configuration, paper configuration)


@dataclass(frozen=True)
class Race:
    """Where a racing confirmation stands: the round to run next (0: finished), the configurations
    that need its seed, each decided pair's verdict with the round that decided it, the undecided
    pairs, and each tested pair's Holm-adjusted p-value at the look that decided it (or the last)."""

    round: int
    needed: tuple[str, ...]
    decided: dict[Pair, tuple[Verdict, int]] = field(default_factory=dict)
    undecided: tuple[Pair, ...] = ()
    adjusted: dict[Pair, float] = field(default_factory=dict)


def racing_looks(max_seeds: int) -> int:
    """How many rounds of a racing confirmation look at the data: a searched configuration has r
    unbiased seeds after round r (its selected seed does not count) and a test needs two a side,
    so rounds 2 .. max_seeds - 1 look."""
    return max_seeds - 2


def look_levels(alpha: float, max_seeds: int) -> list[float]:
    """The level of each look (rounds 2 .. max_seeds - 1): half of ``alpha`` shared by the early
    looks, half at the last; they add up to ``alpha``."""
    looks = racing_looks(max_seeds)
    if looks == 1:
        return [alpha]
    return [alpha / 2 / (looks - 1)] * (looks - 1) + [alpha / 2]


def race(pairs: Sequence[Pair], attempted: Mapping[str, set[int]], values: Mapping[str, Mapping[int, np.ndarray]],
         alpha: float, max_seeds: int, tolerances: Mapping[str, np.ndarray] | None = None) -> Race:
    """Replay a racing confirmation: ``attempted[c]`` holds the seed offsets of configuration ``c``
    that have ended (0 is the search's seed), ``values[c][k]`` the objective values of those that
    completed (a searched front configuration's offset 0 left out: it is biased by the selection),
    ``tolerances[c]`` its share of the ties of costs compared exactly (``uncertainty.cost_tolerances``;
    None: any constant objective is compared exactly, without tolerance)."""
    undecided = list(pairs)
    decided: dict[Pair, tuple[Verdict, int]] = {}
    adjusted: dict[Pair, float] = {}
    levels = look_levels(alpha, max_seeds)
    for round_ in range(1, max_seeds):
        racing = sorted({c for pair in undecided for c in pair})
        needed = tuple(c for c in racing if round_ not in attempted.get(c, set()))
        if needed:
            return Race(round_, needed, decided, tuple(undecided), adjusted)
        if round_ < 2:
            continue
        up_to = {c: np.array([v for k, v in sorted(values.get(c, {}).items()) if k <= round_]) for c in racing}
        tested = [(pair, compare(up_to[pair[0]], up_to[pair[1]], alpha,
                                 None if tolerances is None else tolerances[pair[0]] + tolerances[pair[1]]))
                  for pair in undecided if len(up_to[pair[0]]) and len(up_to[pair[1]])]
        comparisons = [c for _, c in tested]
        adjusted.update(zip([pair for pair, _ in tested], holm([c.p_value for c in comparisons])))
        for (pair, _), verdict in zip(tested, decide(comparisons, levels[round_ - 2])):
            if verdict != Verdict.NOT_SHOWN:
                decided[pair] = (verdict, round_)
        undecided = [pair for pair in undecided if pair not in decided]
        if not undecided:
            break
    return Race(0, (), decided, tuple(undecided), adjusted)


def pairs_to_confirm(table: pd.DataFrame, objectives: Sequence[str]) -> tuple[list[str], list[str]]:
    """The searched configurations on the validation front and the completed paper configurations:
    every report compares each of the former with each of the latter."""
    reported = reported_trials(table, objectives)
    papers = reported[Column.ORIGIN].map(is_paper).astype(bool)
    return sorted(reported.loc[~papers, Column.TRIAL_ID]), sorted(reported.loc[papers, Column.TRIAL_ID])


def replay(table: pd.DataFrame, settings: RunSettings, alpha: float | None = None) -> Race:
    """The racing confirmation of a run, replayed from its results table (at the run's level, or
    ``alpha``)."""
    front, papers = pairs_to_confirm(table, settings.objectives)
    return race([(f, p) for f in front for p in papers], *_seed_offsets(table, settings.objectives),
                settings.verdict_alpha if alpha is None else alpha, settings.max_seeds,
                cost_tolerances(table, settings.objectives))


def _seed_offsets(table: pd.DataFrame, objectives: Sequence[str]
                  ) -> tuple[dict[str, set[int]], dict[str, dict[int, np.ndarray]]]:
    """Per configuration: the seed offsets that ended, and the objective values of those that
    completed (a searched configuration's selected seed left out)."""
    ended = table[table[Column.STATUS].isin(FINAL_STATUSES)]
    base = search_trials(table).set_index(Column.TRIAL_ID)[Column.SEED]
    attempted: dict[str, set[int]] = {}
    values: dict[str, dict[int, np.ndarray]] = {}
    for (_, row), config in zip(ended.iterrows(), configuration_id(ended)):
        if config not in base:
            continue
        offset = int(row[Column.SEED]) - int(base[config])
        attempted.setdefault(config, set()).add(offset)
        selected = offset == 0 and not is_paper(row[Column.ORIGIN])
        measured = row[Column.STATUS] == TrialStatus.COMPLETED and pd.notna(row[list(objectives)]).all()
        if measured and not selected:
            values.setdefault(config, {})[offset] = row[list(objectives)].to_numpy(dtype=float)
    return attempted, values


def simulate_race(rng: np.random.Generator, front: int, papers: int, max_seeds: int, difference: float,
                  alpha: float = 0.05) -> tuple[Race, int]:
    """A racing confirmation on simulated seeds (standard normal on two objectives): ``front``
    configurations each ``difference`` standard deviations better than each of ``papers`` (0: the
    null). Returns the finished race and the seeds spent; the suite and
    ``benchmarks/bench_verdicts.py`` measure racing's error rate and cost with it."""
    names = [f"front{i}" for i in range(front)] + [f"paper{i}" for i in range(papers)]
    data = {c: rng.normal(size=(max_seeds, 2)) - (difference if c.startswith("front") else 0) for c in names}
    pairs = [(f, p) for f in names[:front] for p in names[front:]]
    attempted = {c: {0} for c in names}
    values = {c: ({} if c.startswith("front") else {0: data[c][0]}) for c in names}  # a front's seed 0 is selected
    while (state := race(pairs, attempted, values, alpha, max_seeds)).round:
        for c in state.needed:
            attempted[c].add(state.round)
            values[c][state.round] = data[c][state.round]
    return state, sum(len(v) for v in attempted.values())
