"""The ``ppsearch`` argument parser: one small function per subcommand; the flags that several
subcommands take are declared once, in parent parsers.

Closed sets of names (datasets, budgets, protocols, samplers, ...) are the torch-free registries'
own, given as choices: ``--help`` and the generated reference list them, and a typo is refused
before anything runs. Nothing here imports torch.
"""
from __future__ import annotations

import argparse
from typing import Any

from .. import __version__
from ..data.names import BAD_IMAGE_POLICIES, BAD_IMAGES_FAIL, DATASETS, IMAGENET, STREAM_AUTO, STREAM_MODES
from ..robustness.names import HENDRYCKS, PROTOCOL_NAMES, SEED_PAPER
from ..rundir import AUTO, LATENCY_DEVICES, MIN_RACING_SEEDS, OBJECTIVES, LatencyBackend, RunSettings
from ..search.strategies import SAMPLERS, Scheduler
from ..training.names import BUDGET_NAMES, DEMO, OVERRIDABLE
from . import commands
from .arguments import (
    Parser,
    add_design_arguments,
    alpha,
    confirm_seeds,
    constraint,
    device,
    integer,
    objectives,
    one_of,
    real,
    seed,
    validation_fraction,
    weights,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (the reference docs/reference/cli.md is generated from it)."""
    parser = Parser(prog="ppsearch", description="Search where push-pull inhibition goes in a ConvNet.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (_add_models, _add_corrupt, _add_eval, _add_train, _add_run, _add_pick, _add_apply, _add_export,
                _add_report, _add_dashboard):
        add(subcommands)
    return parser


DEMO_RUN = "runs/search/resnet-cifar-fashion-mnist-demo"  # where `make demo` writes its run
EXAMPLE_PREFIX = "example: "  # begins every subcommand's epilog (the reference shows the rest as a code block)


def _example(command: str) -> dict[str, Any]:
    """What makes a subcommand's --help end with an example: ``command`` as an epilog, kept on one
    line (argparse would wrap it, and a wrapped command does not paste)."""
    return {"epilog": EXAMPLE_PREFIX + command, "formatter_class": argparse.RawDescriptionHelpFormatter}


# Every parent is built afresh for each subcommand that takes it: argparse shares a parent's actions
# with its children, so one child's set_defaults (run's --validation-fraction) would change them all.

def _data_parent(dataset_default: str | None) -> Parser:
    """Which dataset a command reads (required where ``dataset_default`` is None), where it lives,
    how an image-folder dataset is read; and --quiet, as every command that reads one shows progress."""
    parent = Parser(add_help=False)
    parent.add_argument("--dataset", required=dataset_default is None, default=None,
                        help=f"default: {dataset_default}" if dataset_default else None, **one_of("dataset", DATASETS))
    parent.add_argument("--data-dir", default=None, help="where the dataset lives (default: its usual place)")
    parent.add_argument("--image-size", type=integer(8), default=None, help=f"{IMAGENET} only (default 224)")
    parent.add_argument("--stream", default=STREAM_AUTO, **one_of("stream mode", STREAM_MODES),
                        help=f"{IMAGENET}: stream the images from their files instead of decoding them into memory; "
                             f"{STREAM_AUTO}: when the decoded images exceed --memory-budget (default: %(default)s)")
    parent.add_argument("--memory-budget", type=real(0, above=True), default=None, metavar="GIB",
                        help="memory for decoded images, in GiB (default: half of this machine's memory)")
    parent.add_argument("--quiet", action="store_true", help="no progress lines or bars")
    return parent


def _trial_parent() -> Parser:
    """What train and run decide alike about their trials: the space, the budget, the validation
    split, and what an epoch does with an image it cannot decode."""
    parent = Parser(add_help=False)
    parent.add_argument("--space", default="resnet-cifar", help="embedded space name or a YAML file")
    parent.add_argument("--budget", default=DEMO, **one_of("budget", BUDGET_NAMES),
                        help="how many images and epochs a trial trains on, and evaluates on (default: %(default)s)")
    parent.add_argument("--budget-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help=f"change the budget's {', '.join(OVERRIDABLE)} (null for an image count: the whole split)")
    parent.add_argument("--validation-fraction", type=validation_fraction, default=None,
                        help="hold out this fraction of the training split (stratified by class) and measure on it too "
                             "(val_<metric> columns; a search selects on them and only reports the test split) "
                             "(default: %(default)s)")
    parent.add_argument("--bad-images", default=BAD_IMAGES_FAIL, **one_of("bad-images policy", BAD_IMAGE_POLICIES),
                        help="what an epoch does with a streamed training image it cannot decode: fail the trial, or "
                             "skip the image and count it in the record (default: %(default)s)")
    return parent


def _protocol_parent() -> Parser:
    parent = Parser(add_help=False)
    parent.add_argument("--protocol", default=None, **one_of("protocol", PROTOCOL_NAMES),
                        help="evaluation protocol: frame rule of FP/T5D, mFR's perturbations, normalisers "
                             f"(default: {SEED_PAPER} for CIFAR-size data, {HENDRYCKS} for ImageNet)")
    return parent


def _tracking_parent() -> Parser:
    """Where train and run track their trials as MLflow runs (ppsearch.tracking)."""
    parent = Parser(add_help=False)
    group = parent.add_argument_group("MLflow tracking (needs ppsearch[mlflow])")
    group.add_argument("--mlflow", default=None, metavar="URI",
                       help="track every trial as an MLflow run in an experiment named after the run directory: "
                            "http://HOST:PORT of a tracking server, or an MLflow database (sqlite:///PATH); "
                            "rerunning the command adds to the same runs")
    group.add_argument("--mlflow-artifacts", action="store_true",
                       help="also log each trial's model file as an artifact of its run")
    return parent


def _device_parent() -> Parser:
    parent = Parser(add_help=False)
    parent.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N (a device this machine has)")
    return parent


def _test_set_parent() -> Parser:
    """Which test images corrupt and eval take, and how their -C and -P sets are generated."""
    parent = Parser(add_help=False)
    parent.add_argument("--subset", type=integer(1), default=None, help="use the first N test images")
    parent.add_argument("--frost-dir", default=None,
                        help="directory with the reference frost textures (default: ppsearch's procedural frost)")
    parent.add_argument("--seed", type=seed, default=0, help="0 .. 2**32-1")
    return parent


def _add_models(subcommands: argparse._SubParsersAction) -> None:
    models = subcommands.add_parser("models", parents=[_device_parent()],
                                    help="list architectures, or profile one with a design",
                                    **_example("ppsearch models --arch resnet20 --placement b1 --latency"))
    models.add_argument("--arch", help="architecture name (see `ppsearch models`)")
    models.add_argument("--in-chans", type=integer(1), default=3)
    models.add_argument("--num-classes", type=integer(2), default=10)
    models.add_argument("--image-size", type=integer(8), default=None, help="default: 32 for CIFAR models, 224 otherwise")
    models.add_argument("--latency", action="store_true",
                        help="also measure the latency of the design and of the plain model on --device")
    _add_latency_setup(models)
    add_design_arguments(models)
    models.set_defaults(run=commands.cmd_models)


def _add_latency_setup(parser: argparse.ArgumentParser, *device_flag: str, **device: Any) -> None:
    """How latency is timed: images per pass, what runs the passes (and, for a search, where)."""
    parser.add_argument("--latency-batch", type=integer(1), default=1,
                        help="images per timed forward pass (default: %(default)s)")
    parser.add_argument("--latency-backend", default=LatencyBackend.TORCH.value, **one_of("backend", LatencyBackend),
                        help="eager torch, or onnxruntime: the model exported to ONNX as it will be served "
                             "(needs ppsearch[export]; default: %(default)s)")
    if device_flag:
        parser.add_argument(*device_flag, **device)


def _add_corrupt(subcommands: argparse._SubParsersAction) -> None:
    corrupt = subcommands.add_parser("corrupt", parents=[_data_parent(None), _test_set_parent(), _device_parent()],
                                     help="write generated -C and -P sets of a dataset's test split",
                                     **_example("ppsearch corrupt --dataset cifar10 --subset 1000 --out cifar10-sets"))
    corrupt.add_argument("--out", required=True, help="new output directory")
    corrupt.set_defaults(run=commands.cmd_corrupt)


def _add_eval(subcommands: argparse._SubParsersAction) -> None:
    evaluate = subcommands.add_parser("eval", help="clean, -C and -P metrics of a saved model", parents=[
        _data_parent("the model's"), _test_set_parent(), _device_parent(), _protocol_parent()],
        **_example("ppsearch eval --checkpoint resnet20-pushpull.safetensors --subset 2000"))
    evaluate.add_argument("--checkpoint", required=True,
                          help="a model .safetensors written by ppsearch, or a checkpoint of the seed paper's code "
                               "(.pth/.pth.tar) with --arch and the design flags it was trained with")
    evaluate.add_argument("--arch", default=None,
                          help="architecture of a seed-code checkpoint (resnet20, densenet-bc-40-12, ...)")
    add_design_arguments(evaluate)
    evaluate.add_argument("--c-source", default="generated", help="generated, none or official:DIR (CIFAR-C .npy "
                                                                  "files, or an ImageNet-C <corruption>/<severity>/"
                                                                  "<wnid>/ tree)")
    evaluate.add_argument("--p-source", default="generated", help="generated, none or official:DIR (CIFAR-P .npy "
                                                                  "files, or an ImageNet-P <perturbation>/<wnid>/"
                                                                  "*.mp4 tree)")
    evaluate.add_argument("--batch-size", type=integer(1), default=None, help="default: 256 on CPU, 1024 on GPU")
    evaluate.add_argument("--out", default=None, help="where to write the tables (default: next to the checkpoint)")
    evaluate.set_defaults(run=commands.cmd_eval)


def _add_train(subcommands: argparse._SubParsersAction) -> None:
    train = subcommands.add_parser("train", help="train and measure one configuration over seeds", parents=[
        _data_parent("the space's"), _trial_parent(), _protocol_parent(), _device_parent(), _tracking_parent()],
        **_example("ppsearch train --space resnet-cifar --config paper:resnet20-pp --seeds 3"))
    train.add_argument("--config", nargs="*", default=[],
                       help="paper:NAME and/or key=value overrides, applied in order over the space's defaults")
    train.add_argument("--seeds", type=integer(1), default=1, help="train seeds 0..N-1")
    train.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    train.add_argument("--out", default=None, help="run directory (default: runs/train/<space>-<config>-<dataset>-"
                                                   "<budget>); rerunning on it resumes")
    train.set_defaults(run=commands.cmd_train)


def _add_run(subcommands: argparse._SubParsersAction) -> None:
    run = subcommands.add_parser("run", help="search the space: Ray Tune trials, Optuna sampling, MO-ASHA",
                                 parents=[_data_parent("the space's"), _trial_parent(), _protocol_parent(),
                                          _tracking_parent()],
                                 **_example("ppsearch run --space resnet-cifar --dataset fashion-mnist --budget demo "
                                            "--trials 6 --confirm-seeds 2"))
    run.add_argument("--objectives", type=objectives, default=None, metavar="NAME[,NAME...]",
                     help=f"comma-separated subset of {', '.join(OBJECTIVES)} (default: the space's)")
    run.add_argument("--sampler", default="tpe", **one_of("sampler", SAMPLERS),
                     help="Optuna sampler of the searched trials (default: %(default)s)")
    run.add_argument("--scheduler", default=Scheduler.MOASHA.value, **one_of("scheduler", Scheduler),
                     help=f"{Scheduler.MOASHA}: stop the trials dominated at a rung (multi-objective ASHA); "
                          f"{Scheduler.NONE}: every trial trains its whole budget (default: %(default)s)")
    run.add_argument("--trials", type=integer(0), default=10, help="searched trials beyond the papers' configurations")
    run.add_argument("--seed", type=seed, default=0, help="0 .. 2**32-1: seed of the sampler, the validation split and "
                                                                "every search trial")
    run.add_argument("--confirm-seeds", type=confirm_seeds, default="1", metavar=f"K|{AUTO}",
                     help="after the search, retrain every validation-front and paper configuration with K-1 "
                          f"further seeds (default 1: none); {AUTO}: a seed per round to the configurations of "
                          "undecided (front, paper) pairs until each is decided or has --max-seeds")
    run.add_argument("--max-seeds", type=integer(MIN_RACING_SEEDS), default=RunSettings.max_seeds,
                     help=f"--confirm-seeds {AUTO}: the most seeds a configuration gets (default %(default)s)")
    run.add_argument("--verdict-alpha", type=alpha, default=RunSettings.verdict_alpha,
                     help="level of the verdicts: the chance of any false 'dominates' in a report (default %(default)s)")
    run.add_argument("--constraint", type=constraint, action="append", default=[], metavar="METRIC<=BOUND",
                     help="a bound on what a design costs, repeatable: latency_ms<=4, params<=3e5, flops<=1.3x (a "
                          "ratio to the plain paper model); a searched design that breaks one is measured, not "
                          "trained, and never on a front or picked (samplers: tpe, nsga2, gp)")
    _add_latency_setup(run, "--latency-device", default=None, **one_of("latency device", LATENCY_DEVICES),
                       help="where trials time their latency: cpu, or cuda (the trial's GPU); default: the "
                            "trial's own device")
    run.add_argument("--seed-from", nargs="+", default=[], metavar="RUN_DIR",
                     help="finished runs whose validation-front designs are trained first (after the papers'), "
                          "on this space's architecture; their values are not told to this run's sampler")
    _add_ray_resources(run.add_argument_group("Ray resources"))
    run.add_argument("--out", default=None, help="run directory (default: runs/search/<space>-<dataset>-<budget>); "
                                                 "rerunning on it continues the run")
    run.add_argument("--resume", action="store_true", help="insist on continuing an existing run")
    # a search selects on validation images, so it holds some out unless told otherwise; train does not
    run.set_defaults(run=commands.cmd_run, validation_fraction=0.1)


def _add_ray_resources(group: argparse._ArgumentGroup) -> None:
    """What each trial of a search asks of Ray, and which Ray cluster runs them (checked by
    ppsearch.search.engine.connect_ray)."""
    group.add_argument("--cpus-per-trial", type=real(0, above=True), default=1.0)
    group.add_argument("--gpus-per-trial", type=real(0), default=0.0, help="fractions share a GPU")
    group.add_argument("--max-concurrent", type=integer(0), default=0, help="0: as many as the resources allow")
    group.add_argument("--time-budget", type=real(0, above=True), default=None,
                       help="stop starting trials after this many seconds")
    group.add_argument("--address", default=None,
                       help="join a Ray cluster: auto, or HOST:PORT of its head (default: a Ray of this run's own); "
                            "Ray Client ray:// addresses are refused: submit the run to the cluster instead "
                            "(ray job submit -- ppsearch run --address auto ...)")


def _add_pick(subcommands: argparse._SubParsersAction) -> None:
    pick = subcommands.add_parser("pick", help="choose a configuration from a run's Pareto front, print it as YAML",
                                  **_example(f"ppsearch pick {DEMO_RUN} --max-clean-error-increase 1 > picked.yaml"))
    pick.add_argument("run_dir", nargs="+", help="a `ppsearch run` directory; several: the design on every run's "
                                                 "front, or the closest")
    pick.add_argument("--max-clean-error-increase", type=real(), default=None, metavar="PP",
                      help="allow at most PP percentage points more clean error than the plain paper model")
    pick.add_argument("--max-latency-ms", type=real(0, above=True), default=None, metavar="MS",
                      help="only configurations whose measured latency is at most MS milliseconds")
    pick.add_argument("--max-flops-ratio", type=real(0, above=True), default=None, metavar="R",
                      help="only configurations with at most R times the plain paper model's FLOPs")
    pick.add_argument("--objective-weights", type=weights, default=None,
                      help="comma-separated weights, one per objective (default: the knee, closest to the ideal)")
    pick.set_defaults(run=commands.cmd_pick)


def _add_apply(subcommands: argparse._SubParsersAction) -> None:
    apply = subcommands.add_parser("apply", help="build a model with a picked configuration (push-pull by surgery)",
                                   **_example("ppsearch apply picked.yaml --model timm:resnet50 --checkpoint "
                                              "resnet50.safetensors --out resnet50-pp.safetensors"))
    apply.add_argument("config", help="YAML configuration, as `ppsearch pick` prints")
    apply.add_argument("--model", required=True, help="timm:NAME, an ImageNet ResNet name, or a ppsearch architecture")
    apply.add_argument("--checkpoint", default=None, help="weights of the plain model (.safetensors or .pth); "
                                                          "without them the weights are random")
    apply.add_argument("--in-chans", type=integer(1), default=3)
    apply.add_argument("--num-classes", type=integer(2), default=None,
                       help="the model's classes (default: those of a ppsearch model file given as --checkpoint, "
                            "else the dataset's: 10 for fashion-mnist and cifar10, 100 for cifar100, 1000 for imagenet)")
    apply.add_argument("--dataset", default=None, **one_of("dataset", DATASETS),
                       help="what the model is for: its normalisation, eval's default (default: the dataset of a "
                            f"ppsearch model file given as --checkpoint, else {IMAGENET} for an ImageNet model; a "
                            "CIFAR-size architecture needs it)")
    apply.add_argument("--out", default=None, help="output .safetensors, or .onnx to export it for serving "
                                                   "(default: <model>-pushpull.safetensors)")
    apply.set_defaults(run=commands.cmd_apply)


EXPORT_FORMATS = ("onnx",)  # each has its writer in ppsearch.models.export


def _add_export(subcommands: argparse._SubParsersAction) -> None:
    export = subcommands.add_parser("export", help="write a ppsearch model file in a deployment format (ONNX)",
                                    **_example("ppsearch export resnet50-pp.safetensors --out resnet50-pp.onnx"))
    export.add_argument("model_file", help="a ppsearch model file (.safetensors, as train, run and apply write)")
    export.add_argument("--format", default="onnx", **one_of("format", EXPORT_FORMATS))
    export.add_argument("--out", required=True, help="output file (model.onnx)")
    export.set_defaults(run=commands.cmd_export)


def _add_report(subcommands: argparse._SubParsersAction) -> None:
    report = subcommands.add_parser("report", help="write a run's HTML report (offline) and its tables",
                                    **_example(f"ppsearch report {DEMO_RUN}"))
    report.add_argument("run_dir", nargs="+", help="a `ppsearch run` directory; several: one comparison report")
    report.add_argument("--verdict-alpha", type=alpha, default=None,
                        help="level of the verdicts (default: the run's --verdict-alpha)")
    report.add_argument("--out", default=None, help="HTML file (default: RUN_DIR/report.html, or comparison.html "
                                                    "beside the first of several runs)")
    report.set_defaults(run=commands.cmd_report)


def _add_dashboard(subcommands: argparse._SubParsersAction) -> None:
    dashboard = subcommands.add_parser("dashboard", help="a live dashboard of a run (refreshes while it searches)",
                                       **_example(f"ppsearch dashboard {DEMO_RUN} --port 8050"))
    dashboard.add_argument("run_dir", nargs="+", help="a `ppsearch run` directory; several: compared")
    dashboard.add_argument("--port", type=integer(1, 65535), default=8050)
    dashboard.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1: this machine only")
    dashboard.set_defaults(run=commands.cmd_dashboard)
