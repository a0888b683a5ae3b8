"""What the report's verdicts are worth, by simulation: the false-verdict rate of
``uncertainty.compare`` under the null at 2-20 seeds (identical configurations, and the least
favourable case for the intersection-union test: one objective equal, the others hugely better),
its power, the coverage of the hypervolume interval, and adaptive confirmation (racing) against a
fixed number of seeds: error rate, power and seeds spent.

    python benchmarks/bench_verdicts.py [--draws 4000]

Seeds are standard normal per objective (a configuration's seed-to-seed spread is the unit), which
is what Welch's test assumes; the suite (tests/test_uncertainty.py) checks the same properties with
fewer draws.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from ppsearch.selection.pareto import points_hypervolume
from ppsearch.selection.racing import simulate_race
from ppsearch.selection.uncertainty import Verdict, compare, decide, hypervolume_of_means

ALPHA = 0.05


def _rate(hits: int, draws: int) -> str:
    rate = hits / draws
    return f"{rate:.3f} ± {1.96 * math.sqrt(max(rate * (1 - rate), 1e-12) / draws):.3f}"


def false_verdicts(rng: np.random.Generator, draws: int) -> None:
    print("\n## False verdicts under the null (alpha 0.05; rate ± 95% Monte-Carlo half-width)\n")
    print("| seeds a side | 1 objective: dominates | 1: any verdict | 3 equal: any | 3, two hugely better: dominates |")
    print("|---|---|---|---|---|")
    for n in (2, 3, 5, 10, 20):
        counts = []
        for objectives, shift, kind in ((1, 0.0, Verdict.DOMINATES), (1, 0.0, None), (3, 0.0, None),
                                        (3, -10.0, Verdict.DOMINATES)):
            hits = 0
            for _ in range(draws):
                a, b = rng.normal(size=(n, objectives)), rng.normal(size=(n, objectives))
                a[:, 1:] += shift
                verdict = compare(a, b, ALPHA).verdict
                hits += verdict == kind if kind else verdict != Verdict.NOT_SHOWN
            counts.append(_rate(hits, draws))
        print(f"| {n} | " + " | ".join(counts) + " |")


def power(rng: np.random.Generator, draws: int) -> None:
    print("\n## Power: A better by d standard deviations on every objective (one comparison, alpha 0.05)\n")
    print("| seeds a side | d | 1 objective | 2 objectives | 3 objectives |")
    print("|---|---|---|---|---|")
    for n, d in ((3, 2), (5, 1), (5, 2), (10, 1), (10, 2)):
        cells = []
        for objectives in (1, 2, 3):
            hits = sum(compare(rng.normal(size=(n, objectives)) - d, rng.normal(size=(n, objectives))).verdict
                       == Verdict.DOMINATES for _ in range(draws))
            cells.append(_rate(hits, draws))
        print(f"| {n} | {d} | " + " | ".join(cells) + " |")
    print("\nWith Holm over a report's family (e.g. 3 front x 14 paper configurations = 42 comparisons):")
    for n in (5, 10):
        hits = 0
        for _ in range(draws // 10):
            family = [compare(rng.normal(size=(n, 3)) - 2, rng.normal(size=(n, 3))) for _ in range(42)]
            hits += sum(v == Verdict.DOMINATES for v in decide(family, ALPHA)) / 42
        print(f"- {n} seeds a side, 2 SD on all 3 objectives: share of true dominances found {hits / (draws // 10):.3f}")


def coverage(rng: np.random.Generator, draws: int) -> None:
    print("\n## Hypervolume interval: coverage of the true front's hypervolume (nominal 0.95)\n")
    print("| objectives | 3 seeds | 5 seeds | 10 seeds |")
    print("|---|---|---|---|")
    means = np.array([[0.10, 0.60, 0.50], [0.14, 0.45, 0.60], [0.20, 0.35, 0.40]])
    for objectives in (2, 3):
        mu, spread = means[:, :objectives], np.array([0.05, 0.1, 0.05])[:objectives]
        reference = np.array([0.3, 0.8, 0.8])[:objectives]
        truth = points_hypervolume(mu, reference)
        cells = []
        for n in (3, 5, 10):
            hits = 0
            for _ in range(draws // 4):
                _, low, high = hypervolume_of_means([m + spread * rng.normal(size=(n, objectives)) for m in mu],
                                                    reference)
                hits += low <= truth <= high
            cells.append(_rate(hits, draws // 4))
        print(f"| {objectives} | " + " | ".join(cells) + " |")


def racing(rng: np.random.Generator, draws: int) -> None:
    print("\n## Adaptive confirmation (racing, --max-seeds 10) against a fixed 10 seeds\n")
    print("2 front x 3 paper configurations, 2 objectives; d: every front configuration better by d SD.\n")
    print("| d | racing: any false verdict | racing: pairs decided | racing: seeds spent | "
          "fixed 10: pairs decided | fixed: seeds spent |")
    print("|---|---|---|---|---|---|")
    for d in (0.0, 1.0, 2.0, 4.0):
        false = decided = spent = fixed_decided = 0
        runs = draws // 20
        for _ in range(runs):
            state, seeds = simulate_race(rng, 2, 3, 10, d)
            false += d == 0 and bool(state.decided)
            decided += sum(v == Verdict.DOMINATES for v, _ in state.decided.values())
            spent += seeds
            data = {k: rng.normal(size=(10, 2)) - (d if k < 2 else 0) for k in range(5)}
            fixed = decide([compare(data[f][1:], data[p]) for f in range(2) for p in range(2, 5)], ALPHA)
            fixed_decided += sum(v == Verdict.DOMINATES for v in fixed)
        print(f"| {d:g} | {_rate(false, runs) if d == 0 else '-'} | {decided / runs / 6:.2f} | {spent / runs:.1f} | "
              f"{fixed_decided / runs / 6:.2f} | 50 |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    false_verdicts(rng, args.draws)
    power(rng, args.draws)
    coverage(rng, args.draws)
    racing(rng, args.draws)


if __name__ == "__main__":
    main()
