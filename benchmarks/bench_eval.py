"""Where a search trial's evaluation goes, and its share of the trial.

A search trial measures its model once, on the validation split: ``evaluate`` on the clean
validation images and the run's -C/-P sets made from them (``official:<folder>``, the budget's
first images of each), the sparsity of every convolution on 256 clean images, and the model file.
This script trains one `demo` trial each of ResNet-20 and ResNet-20-b1 (Fashion-MNIST, 10%
validation, ``run_trial``: 800 images x 3 epochs), then measures that evaluation of the trained
model in fresh processes, each one warm-up round (a worker's first trial: files opened, kernels
chosen) and then ``ROUNDS_PER_PROCESS`` rounds. Every round is split by wall time into the parts
below, each second charged to the innermost part running (the parts are wrappers around the
functions named and timing hooks on the model):

* forward passes: the model's own forward (evaluation and sparsity), per split;
* reading the -C/-P sets: everything ``evaluate`` calls from ``robustness.official``, per split;
* input conversion: ``to_model_input`` (uint8 NHWC to normalised float), per split;
* building batches: ``batched_logits`` and ``Predictor.logits`` around the forward passes, per split;
* metrics: ``robustness.metrics``, per split;
* sparsity: ``sparsity_table`` and the response hooks, beyond their forward pass, per trial;
* saving the model: ``save_model``, per trial;
* the rest: the remainder of the round (``evaluate``'s own set-up, error counts, tables), per split.

Where ``evaluate`` takes ``watch_clean``, the sparsity is measured on the first 256 validation
images inside the evaluation's clean pass (:class:`ResponseSparsity`), as a search trial would
with it; otherwise on 256 test images in a pass of its own, as before. The figure of a model is its
round of median total. With ``--before REV`` the same measurement runs with REV's code too (``git
archive`` into a temporary folder; the checkout is untouched) on the same models and sets, the two
trees' processes alternating, and the metrics both compute (the evaluation, and the sparsity of 256
test images in a pass of its own) are compared bit for bit.

The share of a search trial is evaluation / (training + evaluation), training from the trial's
record. The share at ``short`` is an estimate, not a run: training 54,000 images x 15 epochs at
the demo trial's training rate; the evaluation of 6,000 clean validation images, 2,000 images per
-C cell and 500 -P sequences at the evaluation's measured forward-pass rate alone (lower bound) and
at its seconds per image with all its parts (upper bound: the demo's fixed costs per call, spread
over few images, weigh more than they would at ``short``).
CPU only.

    python benchmarks/bench_eval.py [--before eb39a61] [--rounds 2]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"ResNet-20": "none", "ResNet-20-b1": "b1"}
ROUNDS_PER_PROCESS = 3
SPARSITY_IMAGES = 256
PARTS = {  # part: measured once per split or once per trial
    "forward passes": "split", "reading the -C/-P sets": "split", "input conversion": "split",
    "building batches": "split", "metrics": "split", "sparsity": "trial", "saving the model": "trial",
    "the rest": "split"}


class PartClock:
    """Wall time charged to the innermost running part; the base part takes what no other does."""

    def __init__(self, base: str) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.stack = [base]
        self.mark = time.perf_counter()
        self.forward_images = 0

    def enter(self, part: str) -> None:
        self._charge()
        self.stack.append(part)

    def leave(self) -> None:
        self._charge()
        self.stack.pop()

    def _charge(self) -> None:
        now = time.perf_counter()
        self.seconds[self.stack[-1]] += now - self.mark
        self.mark = now

    def wrap(self, function: Callable, part: str) -> Callable:
        def timed(*args, **kwargs):
            self.enter(part)
            try:
                return function(*args, **kwargs)
            finally:
                self.leave()
        return timed

    def split(self) -> dict[str, float]:
        self._charge()
        return dict(self.seconds)


def instrument(clock: PartClock, model) -> None:
    """Charge the parts of this tree's evaluation code to ``clock`` (by the names both trees share)."""
    import torch.nn as nn

    from ppsearch.models import model_file
    from ppsearch.robustness import evaluate, metrics
    from ppsearch.training import sparsity

    for name, value in vars(evaluate).items():
        if callable(value) and getattr(value, "__module__", "") == "ppsearch.robustness.official":
            setattr(evaluate, name, clock.wrap(value, "reading the -C/-P sets"))
    for name, value in vars(metrics).items():
        if callable(value) and not isinstance(value, type) and getattr(value, "__module__", "") == metrics.__name__:
            setattr(metrics, name, clock.wrap(value, "metrics"))
    for module in (evaluate, sparsity):
        module.to_model_input = clock.wrap(module.to_model_input, "input conversion")
    evaluate.batched_logits = clock.wrap(evaluate.batched_logits, "building batches")
    evaluate.Predictor.logits = clock.wrap(evaluate.Predictor.logits, "building batches")
    sparsity.sparsity_table = clock.wrap(sparsity.sparsity_table, "sparsity")
    if hasattr(sparsity, "ResponseSparsity"):
        sparsity.ResponseSparsity.table = clock.wrap(sparsity.ResponseSparsity.table, "sparsity")
    model_file.save_model = clock.wrap(model_file.save_model, "saving the model")
    # the response hooks run inside the model's forward: charged to sparsity, not to the pass
    register = nn.Module.register_forward_hook
    nn.Module.register_forward_hook = lambda module, hook, **kw: register(module, clock.wrap(hook, "sparsity"), **kw)

    def before(module, inputs):
        clock.forward_images += len(inputs[0])
        clock.enter("forward passes")

    model.register_forward_pre_hook(before)
    register(model, lambda module, inputs, output: clock.leave())


def worker(job: dict) -> None:
    """Measure one model's evaluation with the tree on ``sys.path``; print one JSON line."""
    import inspect

    from ppsearch.data.datasets import load_dataset
    from ppsearch.data.splits import validation_split
    from ppsearch.models import model_file
    from ppsearch.robustness import evaluate
    from ppsearch.training import sparsity

    data = load_dataset(job["dataset"])
    validation = validation_split(data.train_labels, job["validation_fraction"], job["validation_seed"])[1]
    images, labels = data.train_images[validation], data.train_labels[validation]
    model = model_file.load_model(job["model"])
    spec = model.ppsearch_spec
    shares_pass = "watch_clean" in inspect.signature(evaluate.evaluate).parameters
    clock = PartClock("the rest")
    instrument(clock, model)
    predict = evaluate.Predictor(model, spec.mean, spec.std)
    out = Path(job["out"])

    def measure_split():
        shared = sparsity.ResponseSparsity(model, SPARSITY_IMAGES) if shares_pass else None
        result = evaluate.evaluate(predict, images, labels, c_source=f"official:{job['c_dir']}",
                                   p_source=f"official:{job['p_dir']}", clean_images=job["clean_images"],
                                   c_images=job["c_images"], p_images=job["p_images"], protocol=job["protocol"],
                                   dataset=job["dataset"], seed=job["seed"], progress=False,
                                   **({"watch_clean": shared} if shared else {}))
        table = shared.table() if shared else sparsity.sparsity_table(
            model, data.test_images[:SPARSITY_IMAGES], spec.mean, spec.std)
        model_file.save_model(out / "model.safetensors", model, spec)
        return result, table

    rounds = []
    for i in range(1 + ROUNDS_PER_PROCESS):
        clock.seconds.clear()
        clock.forward_images = 0
        clock.mark = time.perf_counter()
        result, _ = measure_split()
        if i:  # the first is the warm-up
            rounds.append({"parts": clock.split(), "forward_images": clock.forward_images})
    # for the comparison of the trees: the sparsity of the same test images in a pass of its own
    test_sparsity = sparsity.sparsity_table(model, data.test_images[:SPARSITY_IMAGES], spec.mean, spec.std)
    metrics = {"clean_error": result.clean_error, "corruption_errors": result.corruption_errors.to_dict("records"),
               "ce": result.ce.to_dict("records"), "flip_probabilities": result.flip_probabilities,
               "top5_distances": result.top5_distances, "summary": result.summary,
               "test_sparsity": test_sparsity.to_dict("records")}
    print(json.dumps({"rounds": rounds, "shares_pass": shares_pass, "load": os.getloadavg()[0],
                      "metrics": json.dumps(metrics, sort_keys=True, default=str)}))


def run_worker(tree: Path, job: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)})
    if done.returncode != 0:
        sys.exit(f"the measurement with the code of {tree} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def frames_per_sequence(p_dir: Path, protocol: str, dataset: str, image_size: int) -> int:
    """Frames of one sequence of every perturbation the protocol measures, summed."""
    import numpy as np

    from ppsearch.robustness.metrics import get_protocol

    names = get_protocol(protocol).setup(dataset, image_size).perturbations
    return sum(np.load(p_dir / f"{name}.npy", mmap_mode="r").shape[1] for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="also measure REV's code (e.g. eb39a61, before issue 26)")
    parser.add_argument("--rounds", type=int, default=2, help="processes per tree and model, alternating trees")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    import torch

    from ppsearch.robustness.corruptions import BENCHMARK_CORRUPTIONS, SEVERITIES
    from ppsearch.training.trial import TrialConfig, evaluation_sets, run_trial, trial_dataset

    print(f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
          f"{os.getloadavg()[0]:.2f} before")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {"after": ROOT}
        if args.before:
            trees = {"before": tmp / "before", **trees}
            trees["before"].mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "ppsearch", "search_spaces"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(trees["before"])], input=archive, check=True)
        data = trial_dataset("fashion-mnist")
        trials, jobs = {}, {}
        for label, placement in MODELS.items():
            config = TrialConfig.create({"arch": "resnet20", "placement": placement}, dataset="fashion-mnist",
                                        budget="demo", validation_fraction=0.1)
            sets = evaluation_sets(tmp / "sets", config, data, progress=False)
            trials[label] = run_trial(config, tmp / placement, sets)
            print(f"trained {label}: {trials[label]['train_seconds']:.1f} s "
                  f"({trials[label]['images_per_second']:.0f} images/s); load {os.getloadavg()[0]:.2f}", flush=True)
            jobs[label] = {"model": str(tmp / placement / "model.safetensors"), "c_dir": str(sets.validation[0]),
                           "p_dir": str(sets.validation[1]), "clean_images": config.eval_images,
                           "c_images": config.c_images, "p_images": config.p_images, "protocol": config.protocol,
                           "dataset": config.dataset, "seed": config.seed,
                           "validation_fraction": config.validation_fraction,
                           "validation_seed": config.validation_seed}
        frames = frames_per_sequence(sets.validation[1], config.protocol, config.dataset, data.test_images.shape[1])
        short = TrialConfig.create({"arch": "resnet20"}, dataset="fashion-mnist", budget="short",
                                   validation_fraction=0.1)
        train, validation = short.splits(data)
        short_train = len(train.labels) * short.epochs
        short_eval = (len(validation.labels[:short.eval_images])
                      + len(BENCHMARK_CORRUPTIONS) * len(SEVERITIES) * short.c_images + short.p_images * frames)
        measured = {(tree, label): [] for tree in trees for label in MODELS}
        for repeat in range(args.rounds):
            for label, job in jobs.items():
                for tree, path in trees.items():
                    out = tmp / f"{tree}-{label}-{repeat}"
                    out.mkdir()
                    measured[tree, label].append(run_worker(path, {**job, "out": str(out)}))
                    print(f"   round {repeat}: {label} with the {tree} code; load "
                          f"{measured[tree, label][-1]['load']:.2f}", flush=True)

    for label in MODELS:
        figures = {}
        for tree in trees:
            runs = measured[tree, label]
            rounds = sorted((r for run in runs for r in run["rounds"]), key=lambda r: sum(r["parts"].values()))
            figures[tree] = rounds[len(rounds) // 2]
            figures[tree]["sparsity"] = ("shares the validation clean pass" if runs[0]["shares_pass"]
                                         else "own pass, test images")
            figures[tree]["loads"] = [run["load"] for run in runs]
        report(label, trials[label], figures, short_train, short_eval)
        if args.before:
            same = {run["metrics"] for tree in trees for run in measured[tree, label]}
            print(f"   metrics of the two trees: {'bit for bit identical' if len(same) == 1 else 'DIFFERENT'}")
    print(f"\nload average {os.getloadavg()[0]:.2f} after")


def report(label: str, trial: dict, figures: dict, short_train: int, short_eval: int) -> None:
    """The split of ``label``'s evaluation per tree, its share of the demo trial and, estimated, of
    a ``short`` trial that trains on ``short_train`` images and evaluates ``short_eval`` (sparsity
    apart)."""
    train = trial["train_seconds"]
    print(f"\n{label}: one search trial's evaluation (validation split), seconds (share of the evaluation), "
          f"round of median total of {ROUNDS_PER_PROCESS} per process")
    print(f"   {'part':26s} {'per':6s}" + "".join(f"{tree:>18s}" for tree in figures))
    for part, per in PARTS.items():
        cells_text = []
        for figure in figures.values():
            seconds, total = figure["parts"].get(part, 0.0), sum(figure["parts"].values())
            cells_text.append(f"{seconds:8.3f} ({seconds / total:4.0%})")
        print(f"   {part:26s} {per:6s}" + "".join(f"{text:>18s}" for text in cells_text))
    for tree, figure in figures.items():
        total = sum(figure["parts"].values())
        forward = figure["parts"].get("forward passes", 0.0)
        rate = figure["forward_images"] / forward
        print(f"   {tree}: evaluation {total:.2f} s, {figure['forward_images']} images through the model at "
              f"{rate:,.0f} images/s (sparsity: {figure['sparsity']}); loads "
              f"{', '.join(f'{x:.2f}' for x in figure['loads'])}")
        print(f"      demo search trial: training {train:.1f} s + evaluation {total:.2f} s -> evaluation "
              f"{total / (train + total):.1%} (target <= 15%)")
        training = short_train / trial["images_per_second"]
        images = short_eval + (0 if figure["sparsity"].startswith("shares") else SPARSITY_IMAGES)
        lower, upper = images / rate, images * total / figure["forward_images"]
        print(f"      short (estimate): training {short_train:,} images {training / 3600:.1f} h, evaluation of "
              f"{images:,} images {lower / 3600:.2f}-{upper / 3600:.2f} h -> evaluation "
              f"{lower / (training + lower):.1%}-{upper / (training + upper):.1%} (target <= 10%)")


if __name__ == "__main__":
    main()
