"""The ``ppsearch`` command line: parses arguments, calls the library, prints.

A user's mistake (:class:`~ppsearch.errors.UserError`, raised where input is checked) ends in one
line on stderr and exit code 2; any other exception is a bug and keeps its traceback (exit 1).
"""
from __future__ import annotations

import argparse
import math
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import DESIGN_KEYS, KEYS, PAPER_PREFIX, Design
from .errors import UserError
from .files import check_output
from .rundir import (
    AUTO,
    CE_PREFIX,
    FINAL_STATUSES,
    JOURNAL_FILE,
    RECORDS_STEM,
    RESULTS_STEM,
    RUN_FILE,
    Column,
    RunSettings,
    TrialStatus,
    load_run,
    read_settings,
    status_counts,
    validation_column,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + error; we keep it to one line
        raise UserError(message)


# Numbers are checked where they enter: each flag's type says what it accepts, and argparse reports
# a refusal as "argument --flag: ..." (one line, exit 2) before anything runs.
def _integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {text!r}")
        return value
    return parse


def _real(minimum: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number, at least ``minimum`` (greater than it with ``above``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        below = minimum is not None and (value <= minimum if above else value < minimum)
        if not math.isfinite(value) or below:
            bound = "" if minimum is None else f" {'>' if above else '>='} {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text!r}")
        return value
    return parse


def _validation_fraction(text: str) -> float:
    value = _real(0, above=True)(text)
    if value > 0.5:
        raise argparse.ArgumentTypeError(f"must be in (0, 0.5], got {text!r}")
    return value


def _alpha(text: str) -> float:
    value = _real(0, above=True)(text)
    if value >= 0.5:
        raise argparse.ArgumentTypeError(f"must be in (0, 0.5), got {text!r}")
    return value


def _confirm_seeds(text: str) -> str:
    if text != AUTO and not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or {AUTO}, got {text!r}")
    return text if text == AUTO else str(int(text))


def _weights(text: str) -> list[float]:
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if not weights or not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise argparse.ArgumentTypeError(f"must be comma-separated finite numbers >= 0, not all 0, got {text!r}")
    return weights


_VALUE_LIKE_AN_OPTION = re.compile(r"-[\d.]")  # "-1,1,1": argparse would take it for an option


def _attach_option_values(argv: Sequence[str]) -> list[str]:
    """``--flag -1,2`` as ``--flag=-1,2``: argparse reads a value that starts with a minus sign and
    is not a plain number as a new option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _VALUE_LIKE_AN_OPTION.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def add_design_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per design key of the configuration schema (``--pull-kernel-size`` ...)."""
    for name in DESIGN_KEYS:
        key = KEYS[name]
        flag = "--" + name.replace("_", "-")
        if key.types == (bool,):
            parser.add_argument(flag, action="store_true", help=key.allowed)
        else:
            parser.add_argument(flag, type=str, default=None, help=f"{key.allowed} (default: {key.default})")


def design_from_args(args: argparse.Namespace) -> dict:
    """The design keys given on the command line (parsed, checked by the schema); the rest are left
    to their defaults."""
    given = {name: getattr(args, name) for name in DESIGN_KEYS}
    design = {name: value if isinstance(value, bool) else KEYS[name].parse(value)
              for name, value in given.items() if value not in (None, False)}
    Design(**design)
    return design


def _cmd_models(args: argparse.Namespace) -> None:
    from .models import describe_architectures
    from .models.profile import profile_model


    if args.arch is None:
        print(f"{'architectures':48s} family")
        for names, text in describe_architectures():
            print(f"{names:48s} {text}")
        return
    profile = profile_model(args.arch, in_chans=args.in_chans, num_classes=args.num_classes,
                            image_size=args.image_size, **design_from_args(args))
    print(profile.render())


def _device(name: str) -> str:
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here")
    return name


def _access(args: argparse.Namespace):
    from .data.streaming import DataAccess

    return DataAccess(args.data_dir, args.stream, args.memory_budget, getattr(args, "bad_images", "fail"))


def _test_split(args: argparse.Namespace):
    from .data.datasets import load_dataset

    channels = 3 if args.dataset == "fashion-mnist" else None
    dataset = load_dataset(args.dataset, args.data_dir, channels=channels, subset=args.subset, test_only=True,
                           image_size=args.image_size, access=_access(args))
    return dataset.test_images, dataset.test_labels, dataset.classes


def _cmd_corrupt(args: argparse.Namespace) -> None:
    from .robustness.generate import write_sets

    out = check_output(args.out, "directory")
    if out.exists():
        raise UserError(f"output directory {out} already exists; choose a new --out")
    images, labels, _ = _test_split(args)
    out = write_sets(images, labels, out, args.dataset, device=_device(args.device),
                     frost_dir=args.frost_dir, seed=args.seed, progress=not args.quiet)
    print(f"wrote {images.shape[0]} images x 19 corruptions x 5 severities and 14 perturbations to {out}")


def _cmd_eval(args: argparse.Namespace) -> None:
    from .data.datasets import native_image_size
    from .models.model_file import load_model
    from .robustness.evaluate import Predictor, evaluate, parse_source
    from .robustness.metrics import check_protocol, default_protocol, get_protocol

    parse_source(args.c_source), parse_source(args.p_source)  # fail on a typo before loading anything
    if args.protocol:
        get_protocol(args.protocol)
    stem = re.sub(r"(\.pth\.tar|\.pth|\.safetensors)$", "", args.checkpoint)
    out = check_output(args.out or f"{stem}-eval", "directory")
    model = load_model(args.checkpoint, args.arch, **design_from_args(args))
    spec = model.ppsearch_spec
    args.dataset = args.dataset or spec.dataset
    protocol = check_protocol(args.protocol or default_protocol(args.dataset), args.dataset,
                              args.image_size or native_image_size(args.dataset))
    images, labels, classes = _test_split(args)
    predictor = Predictor(model, spec.mean, spec.std, _device(args.device), args.batch_size)
    # --subset limits official files too, which hold the whole test set (ImageNet-C: per cell)
    result = evaluate(predictor, images, labels, c_source=args.c_source, p_source=args.p_source,
                      protocol=protocol, dataset=args.dataset, frost_dir=args.frost_dir,
                      seed=args.seed, progress=not args.quiet, c_images=args.subset, p_images=args.subset,
                      classes=classes)
    print(result.render())
    out = result.save(out)
    print(f"tables written to {out}")


SUMMARY_METRICS = (Column.CLEAN_ERROR, Column.MCE, Column.RELATIVE_MCE, Column.MFR, Column.CORRUPTION_ERROR,
                   Column.FIRST_LAYER_WEIGHT_SPARSITY, Column.FIRST_LAYER_RESPONSE_SPARSITY, Column.TRAIN_SECONDS,
                   Column.IMAGES_PER_SECOND)


def _cmd_train(args: argparse.Namespace) -> None:
    from .search.space import load_space
    from .selection.statistics import seed_summary
    from .training.budgets import parse_budget_overrides
    from .training.seeds import train_seeds
    from .training.trial import TrialConfig, TrialEpoch

    space = load_space(args.space)
    dataset_name = args.dataset or space.dataset
    overrides = space.budget(args.budget, parse_budget_overrides(args.budget_set))
    configs = [TrialConfig.create(space.config(args.config), dataset=dataset_name, budget=args.budget, seed=seed,
                                  budget_overrides=overrides, protocol=args.protocol,
                                  validation_fraction=args.validation_fraction, image_size=args.image_size)
               for seed in range(args.seeds)]
    device = _device(args.device)
    label = "-".join(t.removeprefix(PAPER_PREFIX).replace("=", "") for t in args.config) or "defaults"
    out = check_output(args.out or f"runs/train/{space.name}-{label}-{dataset_name}-{args.budget}", "directory")

    def progress(config: TrialConfig, epoch: TrialEpoch) -> None:
        if not args.quiet:
            r = epoch.report
            print(f"seed {config.seed}  epoch {r.epoch}/{r.epochs}  loss {r.train_loss:.4f}  train error "
                  f"{r.train_error:.4f}  test error {epoch.clean_error:.4f}  {r.images_per_second:.0f} images/s",
                  flush=True)

    table = train_seeds(configs, out, access=_access(args), device=device, compile=args.compile,
                        progress=not args.quiet, on_epoch=progress)
    for row in table[table[Column.STATUS] != TrialStatus.COMPLETED].itertuples():
        print(f"seed {row.seed} failed: {row.failure_reason}")
    _print_skipped(table)
    ce_columns = [c for c in table.columns if c.startswith(CE_PREFIX)]
    summary = seed_summary(table[table[Column.STATUS] == TrialStatus.COMPLETED], SUMMARY_METRICS + tuple(ce_columns))
    config = configs[0]
    normaliser = table[Column.CE_NORMALISER].dropna().iloc[0] if Column.CE_NORMALISER in table else "n/a"
    print(f"\n{space.name} {' '.join(args.config) or '(defaults)'} on {dataset_name}, budget {args.budget} "
          f"({config.epochs} epochs, {config.train_images or 'all'} training images, {config.eval_images or 'all'} test "
          f"images, -C {config.c_images or 'all'} and -P {config.p_images or 'all'} of them, recipe {config.recipe}); "
          f"mCE normalised by {normaliser}")
    print(summary.to_string(index=False, formatters={"mean": "{:.4f}".format, "ci95": lambda v: f"+- {v:.4f}"}))
    print(f"records written to {out / RECORDS_STEM}.parquet and .csv")


def _cmd_run(args: argparse.Namespace) -> None:
    from .reporting.report import analyse, config_table, verdict_summary
    from .robustness.metrics import default_protocol
    from .search.engine import Resources, run_search
    from .search.space import load_space
    from .selection.uncertainty import ci_column
    from .training.budgets import parse_budget_overrides

    space = load_space(args.space)
    out = check_output(args.out or f"runs/search/{space.name}-{args.dataset or space.dataset}-{args.budget}",
                       "directory")
    if args.resume and not (out / RUN_FILE).is_file():
        raise UserError(f"--resume: {out} holds no run to resume")
    objectives = tuple(o.strip() for o in args.objectives.split(",")) if args.objectives else space.objectives
    dataset = args.dataset or space.dataset
    settings = RunSettings(str(space.path), dataset, args.budget,
                           space.budget(args.budget, parse_budget_overrides(args.budget_set)), objectives,
                           args.sampler, args.scheduler, args.trials, args.seed,
                           args.protocol or default_protocol(dataset), args.validation_fraction,
                           seed_from=tuple(str(Path(d).resolve()) for d in args.seed_from),
                           image_size=args.image_size, confirm_seeds=args.confirm_seeds, max_seeds=args.max_seeds,
                           verdict_alpha=args.verdict_alpha)
    resources = Resources(args.cpus_per_trial, args.gpus_per_trial, args.max_concurrent, args.time_budget, args.address)
    table = run_search(out, settings, resources, access=_access(args), quiet=args.quiet)
    analysis = analyse(table, read_settings(out))
    front = config_table(analysis.summary, analysis.front_ids, analysis.objectives)
    shown = [Column.CONFIG_ID, Column.ORIGIN, "placement", "variant", "scale", "alpha", "antialias", "augmentation",
             *[validation_column(o) for o in objectives], "seeds", *[c for o in objectives for c in (o, ci_column(o))]]
    print(f"\n{len(table)} trials: {status_counts(table, FINAL_STATUSES)}; Pareto front on {', '.join(objectives)} "
          f"selected on validation images ({len(front)} configurations; test estimates beside them, unprefixed, over "
          f"the seeds that estimate each: a searched configuration's selected seed is left out):")
    print(front[[c for c in shown if c in front]].to_string(index=False, float_format="%.4f"))
    print(verdict_summary(analysis))
    for row in table[table[Column.STATUS] == TrialStatus.FAILED].itertuples():
        print(f"failed: {row.trial_id} ({row.origin}): {row.failure_reason}")
    _print_skipped(table)
    print(f"results table: {out / RESULTS_STEM}.parquet and .csv; Optuna study "
          f"{read_settings(out).study_name} in {out / JOURNAL_FILE}")


def _print_skipped(table) -> None:
    """Undecodable training images skipped under --bad-images skip: said, never silent."""
    skipped = table.get(Column.SKIPPED_IMAGES)
    if skipped is not None and skipped.fillna(0).sum() > 0:
        print(f"skipped {int(skipped.fillna(0).sum())} undecodable training image(s) in "
              f"{int((skipped.fillna(0) > 0).sum())} trial(s) (--bad-images skip; column {Column.SKIPPED_IMAGES})")


def _cmd_pick(args: argparse.Namespace) -> None:
    import yaml

    from .config import typed_config
    from .selection.pick import against_plain, pick, plain_paper
    from .selection.uncertainty import Verdict, ci_column, configurations, selected_column

    if len(args.run_dir) > 1:
        _pick_across(args)
        return
    run_dir = Path(args.run_dir[0])
    table, settings = load_run(run_dir)
    objectives = settings.objectives
    row = pick(table, objectives, weights=args.objective_weights,
               max_clean_error_increase=args.max_clean_error_increase)
    print(f"# picked from {run_dir}: configuration {row[Column.CONFIG_ID]} ({row[Column.ORIGIN]}), chosen on "
          f"validation means: " + ", ".join(f"{o} {row[validation_column(o)]:.4f}" for o in objectives))
    estimate = (f"test estimate over its {row['seeds']} confirmation seed(s), mean with 95% interval: "
                + ", ".join(f"{o} {row[o]:.4f} +- {row[ci_column(o)]:.4f}" for o in objectives) if row["seeds"]
                else "no confirmation seed yet, so no unbiased test estimate (ppsearch run ... --confirm-seeds 3)")
    selected = ", ".join(f"{o} {row[selected_column(o)]:.4f}" for o in objectives)
    print(f"# {estimate}" + (f"; its selected seed (biased by the selection, left out): {selected}"
                             if not math.isnan(row[selected_column(objectives[0])]) else ""))
    comparison = against_plain(table, row, objectives, settings.verdict_alpha)
    if comparison is not None:
        plain = plain_paper(configurations(table, objectives))
        differences = ", ".join(f"{o} {d:+.4f} [{low:+.4f}, {high:+.4f}]" for o, d, (low, high)
                                in zip(objectives, comparison.differences, comparison.intervals))
        print(f"# against the plain paper model ({plain[Column.ORIGIN]}), Welch t-tests at alpha "
              f"{settings.verdict_alpha:g}: {comparison.verdict} (seeds {comparison.seeds[0]}, {comparison.seeds[1]}); "
              f"differences with 95% intervals: {differences}")
        if comparison.verdict == Verdict.NOT_SHOWN:
            print("# warning: no difference from the plain paper model is shown (more seeds: ppsearch run ... "
                  "--confirm-seeds auto)")
    print(yaml.safe_dump(typed_config(row), sort_keys=False), end="")


def _pick_across(args: argparse.Namespace) -> None:
    import yaml

    from .config import typed_config
    from .reporting.compare import load_runs, pick_across, shared_objectives

    if args.objective_weights is not None or args.max_clean_error_increase is not None:
        raise UserError("--objective-weights and --max-clean-error-increase pick within one run; across runs the "
                        "pick is the design on every run's front (or the closest)")
    runs = load_runs(args.run_dir)
    row, ranks = pick_across(runs, shared_objectives(runs))
    ranked = ", ".join(f"{name.removeprefix('rank in ')} {int(rank)}" for name, rank in ranks.items())
    verdict = ("on the validation front of every run" if (ranks == 1).all()
               else "no design is on every run's validation front; the closest")
    print(f"# picked across {len(runs)} runs: {verdict} (Pareto rank on validation values, 1 = front: {ranked})")
    print(f"# configuration {row[Column.CONFIG_ID]} of {runs[0].name} ({row[Column.ORIGIN]})")
    print(yaml.safe_dump(typed_config(row), sort_keys=False), end="")


def _cmd_apply(args: argparse.Namespace) -> None:
    from .files import read_yaml
    from .models.apply import apply_design
    from .models.model_file import save_model

    out = check_output(args.out or f"{args.model.replace(':', '-')}-pushpull.safetensors", "file")
    config = read_yaml(args.config, "configuration file")
    if not isinstance(config, dict):
        raise UserError(f"{args.config} must hold a mapping of design keys (as `ppsearch pick` prints)")
    applied = apply_design(config, args.model, checkpoint=args.checkpoint, in_chans=args.in_chans,
                           num_classes=args.num_classes, dataset=args.dataset)
    design = Design.from_mapping(applied.spec.design)
    if applied.antialias_left_out:
        print(f"note: antialias {config.get('antialias')} is not applied: {args.model} has no anti-aliasing hook "
              f"(timm offers one for ResNets only); push-pull is")
    save_model(out, applied.model, applied.spec)
    print(f"{args.model}: {len(applied.changes)} convolutions became push-pull ({design.placement}, {design.variant})")
    for change in applied.changes:
        print(f"  {change.name:40s} stage {change.stage}  {change.in_channels}->{change.out_channels} "
              f"k{change.kernel_size} s{change.stride}" + (f" g{change.groups}" if change.groups > 1 else ""))
    print(f"saved to {out}; evaluate with: ppsearch eval --checkpoint {out} --dataset {args.dataset}")


def _cmd_report(args: argparse.Namespace) -> None:
    from .reporting.report import write_report

    if len(args.run_dir) > 1:
        from .reporting.compare import write_comparison

        out = write_comparison(args.run_dir, check_output(
            args.out or Path(args.run_dir[0]).resolve().parent / "comparison.html", "file"))
        print(f"comparison of {len(args.run_dir)} runs written to {out} (tables: {out.stem}-*.csv)")
        return
    out = write_report(args.run_dir[0], check_output(args.out or Path(args.run_dir[0]) / "report.html", "file"),
                       alpha=args.verdict_alpha)
    print(f"report written to {out} (tables: {out.with_suffix('.md')} and {out.stem}-*.csv)")


def _cmd_dashboard(args: argparse.Namespace) -> None:
    import socket

    from .reporting.dashboard import create_app

    app = create_app(args.run_dir)
    with socket.socket() as probe:  # say it in one line before the web server says it in three
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as error:
            raise UserError(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}; "
                             f"the port is in use or not allowed, pass another --port") from None
    print(f"ppsearch dashboard on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    app.run(host=args.host, port=args.port, debug=False)


def _add_data_arguments(parser: argparse.ArgumentParser, dataset_required: bool) -> None:
    parser.add_argument("--dataset", required=dataset_required, default=None,
                        help="fashion-mnist, cifar10, cifar100 or imagenet")
    parser.add_argument("--data-dir", default=None, help="where the dataset lives (default: its usual place)")
    _add_image_arguments(parser, training=False)
    parser.add_argument("--subset", type=_integer(1), default=None, help="use the first N test images")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--frost-dir", default=None,
                        help="directory with the reference frost textures (default: ppsearch's procedural frost)")
    parser.add_argument("--seed", type=_integer(0), default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_image_arguments(parser: argparse.ArgumentParser, training: bool) -> None:
    """How image-folder datasets (imagenet) are read: their size, in memory or streamed."""
    parser.add_argument("--image-size", type=_integer(8), default=None, help="imagenet only (default 224)")
    # both checked by ppsearch.data.streaming.DataAccess (importing it here would import torch)
    parser.add_argument("--stream", default="auto",
                        help="imagenet: auto, always or never stream the images from their files instead of decoding "
                             "them into memory (auto: stream when the decoded images exceed --memory-budget)")
    parser.add_argument("--memory-budget", type=_real(0, above=True), default=None, metavar="GIB",
                        help="memory for decoded images, in GiB (default: half of this machine's memory)")
    if training:
        parser.add_argument("--bad-images", default="fail",
                            help="fail or skip: a streamed training image that cannot be decoded fails the trial, "
                                 "or is skipped and counted in the record (default: fail)")


def _add_protocol_argument(parser: argparse.ArgumentParser) -> None:
    # checked by ppsearch.robustness.metrics.get_protocol before any work (importing it here would
    # import torch for every command)
    parser.add_argument("--protocol", default=None,
                        help="evaluation protocol: frame rule of FP/T5D, mFR's perturbations, normalisers "
                             "(default: seed-paper for CIFAR-size data, hendrycks for ImageNet)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ppsearch", description="Search where push-pull inhibition goes in a ConvNet.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    models = commands.add_parser("models", help="list architectures, or profile one with a design")
    models.add_argument("--arch", help="architecture name (see `ppsearch models`)")
    models.add_argument("--in-chans", type=_integer(1), default=3)
    models.add_argument("--num-classes", type=_integer(1), default=10)
    models.add_argument("--image-size", type=_integer(8), default=None,
                        help="default: 32 for CIFAR models, 224 otherwise")
    add_design_arguments(models)
    models.set_defaults(run=_cmd_models)

    corrupt = commands.add_parser("corrupt", help="write generated -C and -P sets of a dataset's test split")
    _add_data_arguments(corrupt, dataset_required=True)
    corrupt.add_argument("--out", required=True, help="new output directory")
    corrupt.set_defaults(run=_cmd_corrupt)

    evaluate = commands.add_parser("eval", help="clean, -C and -P metrics of a saved model")
    evaluate.add_argument("--checkpoint", required=True,
                          help="a model .safetensors written by ppsearch, or a checkpoint of the seed paper's code "
                               "(.pth/.pth.tar) with --arch and the design flags it was trained with")
    evaluate.add_argument("--arch", default=None, help="architecture of a seed-code checkpoint (resnet20, "
                                                       "densenet-bc-40-12, ...)")
    add_design_arguments(evaluate)
    _add_data_arguments(evaluate, dataset_required=False)
    evaluate.add_argument("--c-source", default="generated", help="generated, none or official:DIR (CIFAR-C .npy "
                                                                  "files, or an ImageNet-C <corruption>/<severity>/"
                                                                  "<wnid>/ tree)")
    evaluate.add_argument("--p-source", default="generated", help="generated, none or official:DIR (CIFAR-P .npy "
                                                                  "files, or an ImageNet-P <perturbation>/<wnid>/"
                                                                  "*.mp4 tree)")
    _add_protocol_argument(evaluate)
    evaluate.add_argument("--batch-size", type=_integer(1), default=None, help="default: 256 on CPU, 1024 on GPU")
    evaluate.add_argument("--out", default=None, help="where to write the tables (default: next to the checkpoint)")
    evaluate.set_defaults(run=_cmd_eval)

    train = commands.add_parser("train", help="train and measure one configuration over seeds")
    train.add_argument("--space", default="resnet-cifar", help="embedded space name or a YAML file")
    train.add_argument("--config", nargs="*", default=[],
                       help="paper:NAME and/or key=value overrides, applied in order over the space's defaults")
    train.add_argument("--dataset", default=None, help="default: the space's dataset")
    train.add_argument("--data-dir", default=None, help="where the dataset lives (default: its usual place)")
    _add_image_arguments(train, training=True)
    train.add_argument("--budget", default="demo", help="smoke, demo, short or paper")
    train.add_argument("--budget-set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="change the budget's epochs, train_images, eval_images, c_images or p_images "
                            "(null: the whole split)")
    _add_protocol_argument(train)
    train.add_argument("--seeds", type=_integer(1), default=1, help="train seeds 0..N-1")
    train.add_argument("--validation-fraction", type=_validation_fraction, default=None,
                       help="hold out this fraction of the training split (stratified) and also measure on it "
                            "(val_<metric> columns); default: none")
    train.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    train.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    train.add_argument("--out", default=None, help="run directory (default: runs/train/<space>-<config>-<dataset>-<budget>); "
                                                   "rerunning on it resumes")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars")
    train.set_defaults(run=_cmd_train)

    run = commands.add_parser("run", help="search the space: Ray Tune trials, Optuna sampling, MO-ASHA")
    run.add_argument("--space", default="resnet-cifar", help="embedded space name or a YAML file")
    run.add_argument("--dataset", default=None, help="default: the space's dataset")
    run.add_argument("--data-dir", default=None, help="where the dataset lives (default: its usual place)")
    _add_image_arguments(run, training=True)
    run.add_argument("--budget", default="demo", help="smoke, demo, short or paper")
    run.add_argument("--budget-set", nargs="*", default=[], metavar="KEY=VALUE",
                     help="change the budget's epochs, train_images, eval_images, c_images or p_images")
    run.add_argument("--objectives", default=None, help="comma-separated subset of clean_error,mce,mfr,... "
                                                        "(default: the space's)")
    _add_protocol_argument(run)
    run.add_argument("--sampler", default="tpe", help="tpe, nsga2, gp or random")
    run.add_argument("--scheduler", default="moasha", help="moasha or none")
    run.add_argument("--trials", type=_integer(0), default=10, help="searched trials beyond the papers' configurations")
    run.add_argument("--seed", type=_integer(0), default=0, help="seed of the sampler, the validation split and "
                                                                 "every search trial")
    run.add_argument("--validation-fraction", type=_validation_fraction, default=0.1,
                     help="of the training split, held out (stratified by class) to select on; the test split is "
                          "only reported (default: 0.1)")
    run.add_argument("--confirm-seeds", type=_confirm_seeds, default="1", metavar="K|auto",
                     help="after the search, retrain every validation-front and paper configuration with K-1 "
                          "further seeds (default 1: none); auto: a seed per round to the configurations of "
                          "undecided (front, paper) pairs until each is decided or has --max-seeds")
    run.add_argument("--max-seeds", type=_integer(3), default=RunSettings.max_seeds,
                     help="--confirm-seeds auto: the most seeds a configuration gets (default 10)")
    run.add_argument("--verdict-alpha", type=_alpha, default=RunSettings.verdict_alpha,
                     help="level of the verdicts: the chance of any false 'dominates' in a report (default 0.05)")
    run.add_argument("--seed-from", nargs="+", default=[], metavar="RUN_DIR",
                     help="finished runs whose validation-front designs are trained first (after the papers'), "
                          "on this space's architecture; their values are not told to this run's sampler")
    run.add_argument("--cpus-per-trial", type=_real(0, above=True), default=1.0)
    run.add_argument("--gpus-per-trial", type=_real(0), default=0.0, help="fractions share a GPU")
    run.add_argument("--max-concurrent", type=_integer(0), default=0, help="0: as many as the resources allow")
    run.add_argument("--time-budget", type=_real(0, above=True), default=None,
                     help="stop starting trials after this many seconds")
    run.add_argument("--address", default=None, help="join a Ray cluster: auto or ray://HOST:PORT")
    run.add_argument("--out", default=None, help="run directory (default: runs/search/<space>-<dataset>-<budget>); "
                                                 "rerunning on it continues the run")
    run.add_argument("--resume", action="store_true", help="insist on continuing an existing run")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.set_defaults(run=_cmd_run)

    pick = commands.add_parser("pick", help="choose a configuration from a run's Pareto front, print it as YAML")
    pick.add_argument("run_dir", nargs="+", help="a `ppsearch run` directory; several: the design on every run's "
                                                 "front, or the closest")
    pick.add_argument("--max-clean-error-increase", type=_real(), default=None, metavar="PP",
                      help="allow at most PP percentage points more clean error than the plain paper model")
    pick.add_argument("--objective-weights", type=_weights, default=None,
                      help="comma-separated weights, one per objective (default: the knee, closest to the ideal)")
    pick.set_defaults(run=_cmd_pick)

    apply = commands.add_parser("apply", help="build a model with a picked configuration (push-pull by surgery)")
    apply.add_argument("config", help="YAML configuration, as `ppsearch pick` prints")
    apply.add_argument("--model", required=True, help="timm:NAME, an ImageNet ResNet name, or a ppsearch architecture")
    apply.add_argument("--checkpoint", default=None, help="weights of the plain model (.safetensors or .pth)")
    apply.add_argument("--in-chans", type=_integer(1), default=3)
    apply.add_argument("--num-classes", type=_integer(1), default=1000)
    apply.add_argument("--dataset", default="imagenet", help="what the model is for (its normalisation, eval default)")
    apply.add_argument("--out", default=None, help="output .safetensors (default: <model>-pushpull.safetensors)")
    apply.set_defaults(run=_cmd_apply)

    report = commands.add_parser("report", help="write a run's HTML report (offline) and its tables")
    report.add_argument("run_dir", nargs="+", help="a `ppsearch run` directory; several: one comparison report")
    report.add_argument("--verdict-alpha", type=_alpha, default=None,
                        help="level of the verdicts (default: the run's --alpha, 0.05)")
    report.add_argument("--out", default=None, help="HTML file (default: RUN_DIR/report.html, or comparison.html "
                                                    "beside the first of several runs)")
    report.set_defaults(run=_cmd_report)

    dashboard = commands.add_parser("dashboard", help="a live dashboard of a run (refreshes while it searches)")
    dashboard.add_argument("run_dir", nargs="+", help="a `ppsearch run` directory; several: compared")
    dashboard.add_argument("--port", type=_integer(1, 65535), default=8050)
    dashboard.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1: this machine only")
    dashboard.set_defaults(run=_cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    def command() -> None:
        args = build_parser().parse_args(_attach_option_values(sys.argv[1:] if argv is None else argv))
        args.run(args)

    return run_command(command, "ppsearch")


def run_command(command: Callable[[], None], name: str) -> int:
    """Run a command the way every ppsearch entry point does (the CLI, the scripts in analysis/):
    a user mistake is one line on stderr and exit code 2, never a traceback; a bug keeps its
    traceback (exit 1); Ctrl-C or SIGTERM (what a batch scheduler sends) stops it cleanly with
    exit code 130 or 143, and an interrupted command never reports success."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        command()
    except UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into one (Ray may re-raise it bare)
        received = _TERMINATED[-1] if _TERMINATED else signal.SIGINT
        print(f"{name}: interrupted ({received.name}); what finished is kept: run the same command again to "
              f"continue", file=sys.stderr)
        return 128 + received
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


_TERMINATED: list[signal.Signals] = []


def _raise_interrupted(signum: int, frame: object) -> None:
    _TERMINATED.append(signal.Signals(signum))
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
