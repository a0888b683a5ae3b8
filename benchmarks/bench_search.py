"""The search's costs and what it finds, on the embedded problem (resnet-cifar on Fashion-MNIST).

1. Ray overhead per trial: the same smoke trials run one after another in-process (``run_trial``)
   and through ``run_search`` (Ray Tune + OptunaSearch, one trial at a time); overhead = difference
   of wall times / trials, Ray start excluded (it is reported apart).
2. Hypervolume on (clean_error, mce, mfr) of
   * the papers' configurations alone (the 14 fixed ones of resnet-cifar),
   * a TPE search (papers first, then ``--trials`` sampled ones),
   * a random search of the same conditional space at the same trial budget (Optuna's
     RandomSampler inside the same Ray Tune pipeline: Ray's own BasicVariantGenerator cannot
     express the conditional dimensions),
   * the TPE search with MO-ASHA early stopping, per compute-second (wall seconds x 2 cores),
   for several seeds. Reference point: 1.1 x the worst value of each objective over all runs
   (fixed across methods and seeds); hypervolume is moocore's, via ppsearch.selection.pareto, on the
   test values of the completed trials (the runs select on validation images).

    python benchmarks/bench_search.py [--budget smoke] [--epochs N] [--trials 6] [--seeds 3] [--methods tpe,tpe+moasha]

With ``--epochs 10`` MO-ASHA has three rungs (1, 3, 9 epochs), the setting in which early stopping
can save compute.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ppsearch.rundir import OBJECTIVES as ALL_OBJECTIVES
from ppsearch.rundir import SETS_DIR, Column, RunSettings, TrialStatus, is_paper
from ppsearch.search.engine import Resources, run_search
from ppsearch.search.space import load_space
from ppsearch.selection.pareto import hypervolume
from ppsearch.training.trial import TrialConfig, evaluation_sets, run_trial, trial_dataset

OBJECTIVES = ALL_OBJECTIVES[:3]  # clean error, mCE, mFR
METHODS = {"tpe": ("tpe", "none"), "random": ("random", "none"), "tpe+moasha": ("tpe", "moasha")}


def ray_overhead(budget: str, trials: int, tmp: Path) -> None:
    """The same ``trials`` smoke trials of one configuration, one at a time with 2 threads each, in
    process and through ``run_search``; the search reuses the -C/-P sets made for the in-process
    trials, so the difference is what Ray Tune and Optuna add (plus one Tuner start-up)."""
    import ray

    space_path = tmp / "overhead.yaml"
    space_path.write_text("name: overhead\ndataset: fashion-mnist\ndefaults: {arch: resnet8}\n"
                          "dimensions:\n  antialias: {choices: [none]}\nobjectives: [clean_error, mce]\n")
    space = load_space(space_path)
    data = trial_dataset("fashion-mnist")
    # the same work as a search trial: hold out validation images, measure on them and on test images
    config = TrialConfig.create(space.defaults, dataset="fashion-mnist", budget=budget, validation_fraction=0.1,
                                validation_seed=0)
    run_dir = tmp / "overhead-run"
    sets = evaluation_sets(run_dir / SETS_DIR, config, data, progress=False)
    run_trial(config, tmp / "warm-up", sets)
    started = time.perf_counter()
    for i in range(trials):
        run_trial(config, tmp / f"direct-{i}", sets)
    direct = time.perf_counter() - started
    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray_start = time.perf_counter() - started
    settings = RunSettings(str(space_path), "fashion-mnist", budget, {}, space.objectives, "random", "none",
                           trials, 0, "seed-paper", 0.1)
    started = time.perf_counter()
    run_search(run_dir, settings, Resources(cpus_per_trial=2, max_concurrent=1), quiet=True)
    searched = time.perf_counter() - started
    ray.shutdown()
    print(f"1. Ray overhead ({trials} {budget} trials of resnet8, one at a time, 2 threads each; load average "
          f"{os.getloadavg()[0]:.2f})")
    print(f"   in-process {direct:.1f} s ({direct / trials:.2f} s a trial), through Ray Tune + Optuna "
          f"{searched:.1f} s -> overhead {(searched - direct) / trials:.2f} s per trial "
          f"(target <= 0.5 s); ray.init {ray_start:.1f} s, not counted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="smoke")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="change the budget's epochs (10: three rungs)")
    parser.add_argument("--overhead-trials", type=int, default=16, help="trials of the overhead measurement (0: skip)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    args = parser.parse_args()
    methods = {m: METHODS[m] for m in args.methods.split(",")}
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    print(f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.overhead_trials:
            ray_overhead(args.budget, args.overhead_trials, tmp)
        if not args.seeds:
            return
        space = load_space("resnet-cifar")
        runs = []
        for seed in range(args.seeds):
            for method, (sampler, scheduler) in methods.items():
                settings = RunSettings(str(space.path), "fashion-mnist", args.budget, overrides, OBJECTIVES, sampler,
                                       scheduler, args.trials, seed, "seed-paper", 0.1)
                started = time.perf_counter()
                table = run_search(tmp / f"{method}-{seed}", settings, Resources(cpus_per_trial=1), quiet=True)
                runs.append((method, seed, table, time.perf_counter() - started))
                print(f"   ran {method} seed {seed}: {len(table)} trials in {runs[-1][3]:.0f} s", flush=True)

    completed = pd.concat([t[t[Column.STATUS] == TrialStatus.COMPLETED] for _, _, t, _ in runs])
    reference = 1.1 * completed[list(OBJECTIVES)].max().to_numpy(dtype=float)
    print(f"\n2. hypervolume on {', '.join(OBJECTIVES)}, budget {args.budget}, {len(space.paper_configs)} paper "
          f"configurations + {args.trials} searched trials, reference point {np.round(reference, 4).tolist()}")
    rows = []
    for method, seed, table, wall in runs:
        papers = table[table[Column.ORIGIN].map(is_paper).astype(bool)]
        rows.append({"method": method, "seed": seed, "trials": len(table),
                     "pruned": int((table[Column.STATUS] == TrialStatus.PRUNED).sum()),
                     "hv_papers": hypervolume(papers, OBJECTIVES, reference),
                     "hv": hypervolume(table, OBJECTIVES, reference), "wall_s": wall,
                     "hv_per_core_s": hypervolume(table, OBJECTIVES, reference) / (2 * wall)})
    result = pd.DataFrame(rows)
    print(result.to_string(index=False, float_format="%.4g"))
    by_seed = result.pivot(index="seed", columns="method", values=["hv", "hv_papers", "wall_s"])
    ratios = {}
    for method in methods:
        ratios[f"{method} / papers alone"] = by_seed["hv"][method] / by_seed["hv_papers"][method]
    if {"tpe", "random"} <= set(methods):
        ratios["tpe / random"] = by_seed["hv"]["tpe"] / by_seed["hv"]["random"]
    if {"tpe", "tpe+moasha"} <= set(methods):  # the same trials, with and without early stopping
        ratios["moasha / none: hypervolume"] = by_seed["hv"]["tpe+moasha"] / by_seed["hv"]["tpe"]
        ratios["moasha / none: compute (wall)"] = by_seed["wall_s"]["tpe+moasha"] / by_seed["wall_s"]["tpe"]
    ratios = pd.DataFrame(ratios)
    print("\nratios per seed (median last)")
    print(pd.concat([ratios, ratios.median().to_frame("median").T]).to_string(float_format="%.3f"))
    print("median wall: " + ", ".join(f"{m} {statistics.median(result[result.method == m].wall_s):.0f} s"
                                      for m in methods))
    print(f"load average after the runs {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
