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
   test values of the configurations each run reports (its validation front's and the papers': the
   other trials are measured on validation images only, which the runs select on).

3. With ``--end-to-end`` (alone, instead of 1 and 2): the overhead of a search as a user sees it,
   from the wall times of whole ``ppsearch run`` commands (subprocesses: interpreter start, imports,
   Ray start and stop, the -C/-P sets, the summary and tables included) on a tiny space (resnet8 on
   Fashion-MNIST, two paper configurations, budget smoke: 128 training images), searched with
   ``--scheduler none --max-concurrent 1``, once with ``--small`` and once with ``--large`` searched
   trials, each into a fresh run directory, pairs interleaved ``--repeats`` times (medians). The rest
   of a run is its wall time less its trials' recorded compute (``train_seconds + eval_seconds +
   test_eval_seconds`` of
   every row of results.parquet, papers included); from the two runs' trials T and rests R:
   marginal overhead per trial = (R_large - R_small) / (T_large - T_small) and fixed cost per
   run = R_small - T_small x marginal. Each run's ``phases:`` line (where its wall time went) is echoed.

    python benchmarks/bench_search.py [--budget smoke] [--epochs N] [--trials 6] [--seeds 3] [--methods tpe,tpe+moasha]
    python benchmarks/bench_search.py --end-to-end [--small 2] [--large 10] [--repeats 1]

With ``--epochs 10`` MO-ASHA has three rungs (1, 3, 9 epochs), the setting in which early stopping
can save compute.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from ppsearch.rundir import OBJECTIVES as ALL_OBJECTIVES
from ppsearch.rundir import RESULTS_STEM, SETS_DIR, Column, RunSettings, TrialStatus, is_paper
from ppsearch.search.engine import Resources, run_search
from ppsearch.search.space import load_space
from ppsearch.selection.pareto import hypervolume
from ppsearch.training.trial import TrialConfig, evaluation_sets, run_trial, trial_dataset

# the suite's tiny space (resnet8 on Fashion-MNIST, two papers, smoke = 128 training images), from its one source
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from run_dirs import TINY_SPACE  # noqa: E402

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



def _timed_run(space: Path, trials: int, out: Path) -> dict:
    """One ``ppsearch run`` command of ``trials`` searched trials into ``out``: its wall time, its
    trials (rows of results.parquet) and their recorded compute, and its ``phases:`` line if any."""
    command = [sys.executable, "-m", "ppsearch", "run", "--space", str(space), "--budget", "smoke",
               "--trials", str(trials), "--scheduler", "none", "--max-concurrent", "1", "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(f"`{' '.join(command)}` failed with exit status {done.returncode}; its stderr ends:")
        print("\n".join(done.stderr.splitlines()[-40:]))
        sys.exit(1)
    table = pd.read_parquet(out / f"{RESULTS_STEM}.parquet")
    compute = float(table.reindex(columns=[Column.TRAIN_SECONDS, Column.EVAL_SECONDS, Column.TEST_EVAL_SECONDS])
                    .fillna(0).to_numpy().sum())
    phases = [line for line in done.stdout.splitlines() if line.startswith("phases:")]
    return {"searched": trials, "trials": len(table), "wall": wall, "compute": compute, "rest": wall - compute,
            "phases": phases[-1] if phases else None}


def end_to_end(small: int, large: int, repeats: int) -> None:
    """Fixed cost per run and marginal overhead per trial of whole ``ppsearch run`` commands."""
    load_before = os.getloadavg()[0]
    print(f"{sys.executable} -m ppsearch run, tiny space (resnet8, Fashion-MNIST, 2 paper configurations), "
          f"budget smoke, --scheduler none --max-concurrent 1; {small} and {large} searched trials, "
          f"{repeats} interleaved pair(s)")
    print(f"torch {version('torch')}, ray {version('ray')}, {os.cpu_count()} CPUs; load average "
          f"{load_before:.2f} before")
    runs = {small: [], large: []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        space = tmp / "tiny.yaml"
        space.write_text(textwrap.dedent(TINY_SPACE))
        for repeat in range(repeats):
            for trials in (small, large):
                run = _timed_run(space, trials, tmp / f"run-{trials}-{repeat}")
                runs[trials].append(run)
                print(f"   repeat {repeat}: {trials} searched trials ({run['trials']} in all) in {run['wall']:.1f} s",
                      flush=True)
                if run["phases"]:
                    print(f"      {run['phases']}")
    load_after = os.getloadavg()[0]
    median = {trials: {key: statistics.median(r[key] for r in rs) for key in ("trials", "wall", "compute", "rest")}
              for trials, rs in runs.items()}
    print(f"\n{'run':>18s} {'trials':>7s} {'wall s':>8s} {'trained+measured s':>19s} {'the rest s':>11s}"
          + ("   (medians)" if repeats > 1 else ""))
    for trials, m in median.items():
        print(f"{f'{trials} searched':>18s} {m['trials']:7.0f} {m['wall']:8.1f} {m['compute']:19.1f} {m['rest']:11.1f}")
    s, lg = median[small], median[large]
    marginal = (lg["rest"] - s["rest"]) / (lg["trials"] - s["trials"])
    fixed = s["rest"] - s["trials"] * marginal
    print(f"fixed cost per run {fixed:.1f} s (target <= 10 s)")
    print(f"marginal overhead per trial {marginal:.2f} s beyond training and evaluation (target <= 0.5 s)")
    print(f"load average {load_before:.2f} before, {load_after:.2f} after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="smoke")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="change the budget's epochs (10: three rungs)")
    parser.add_argument("--overhead-trials", type=int, default=16, help="trials of the overhead measurement (0: skip)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--end-to-end", action="store_true",
                        help="only the overhead of whole `ppsearch run` commands (3.)")
    parser.add_argument("--small", type=int, default=2, help="--end-to-end: searched trials of the small run")
    parser.add_argument("--large", type=int, default=10, help="--end-to-end: searched trials of the large run")
    parser.add_argument("--repeats", type=int, default=1, help="--end-to-end: interleaved pairs (medians)")
    args = parser.parse_args()
    if args.end_to_end:
        if args.small == args.large:
            parser.error("--small and --large must differ")
        end_to_end(args.small, args.large, args.repeats)
        return
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
