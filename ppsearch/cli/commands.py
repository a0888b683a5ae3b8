"""What each ``ppsearch`` subcommand does with its parsed arguments: call the library, print.

Each command imports what it needs when it runs, so that ``ppsearch --help``, ``report`` and
``pick`` do not import torch.
"""
from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

from ..config import Design
from ..data.names import BAD_IMAGES_FAIL, FASHION_MNIST
from ..errors import UserError
from ..files import check_output
from ..robustness.names import ALL_CORRUPTIONS, ALL_PERTURBATIONS, SEVERITIES
from ..rundir import (
    COST_METRICS,
    FINAL_STATUSES,
    JOURNAL_FILE,
    RECORDS_STEM,
    RESULTS_STEM,
    Column,
    TrialStatus,
    completed,
    load_run,
    status_counts,
    validation_column,
)
from .arguments import design_from_args


def cmd_models(args: argparse.Namespace) -> None:
    from ..models import describe_architectures
    from ..models.latency import LatencySetup
    from ..models.profile import profile_model

    if args.arch is None:
        print(f"{'architectures':48s} family")
        for names, text in describe_architectures():
            print(f"{names:48s} {text}")
        return
    latency = LatencySetup(args.latency_batch, args.device, args.latency_backend) if args.latency else None
    profile = profile_model(args.arch, in_chans=args.in_chans, num_classes=args.num_classes,
                            image_size=args.image_size, latency=latency, **design_from_args(args))
    print(profile.render())


def _access(args: argparse.Namespace):
    from ..data.streaming import DataAccess

    return DataAccess(args.data_dir, args.stream, args.memory_budget, getattr(args, "bad_images", BAD_IMAGES_FAIL))


def _test_split(args: argparse.Namespace):
    from ..data.datasets import load_dataset

    channels = 3 if args.dataset == FASHION_MNIST else None
    dataset = load_dataset(args.dataset, args.data_dir, channels=channels, subset=args.subset, test_only=True,
                           image_size=args.image_size, access=_access(args))
    return dataset.test_images, dataset.test_labels, dataset.classes


def cmd_corrupt(args: argparse.Namespace) -> None:
    from ..robustness.generate import write_sets

    out = check_output(args.out, "directory")
    if out.exists():
        raise UserError(f"output directory {out} already exists; choose a new --out")
    images, labels, _ = _test_split(args)
    out = write_sets(images, labels, out, args.dataset, device=args.device,
                     frost_dir=args.frost_dir, seed=args.seed, progress=not args.quiet)
    print(f"wrote {images.shape[0]} images x {len(ALL_CORRUPTIONS)} corruptions x {len(SEVERITIES)} severities and "
          f"{len(ALL_PERTURBATIONS)} perturbations to {out}")


def cmd_eval(args: argparse.Namespace) -> None:
    from ..data.datasets import native_image_size
    from ..models.model_file import load_model
    from ..robustness.evaluate import Predictor, evaluate, parse_source
    from ..robustness.metrics import check_protocol, default_protocol

    parse_source(args.c_source), parse_source(args.p_source)  # fail on a typo before loading anything
    stem = re.sub(r"(\.pth\.tar|\.pth|\.safetensors)$", "", args.checkpoint)
    out = check_output(args.out or f"{stem}-eval", "directory")
    model = load_model(args.checkpoint, args.arch, **design_from_args(args))
    spec = model.ppsearch_spec
    args.dataset = args.dataset or spec.dataset
    protocol = check_protocol(args.protocol or default_protocol(args.dataset), args.dataset,
                              args.image_size or native_image_size(args.dataset))
    images, labels, classes = _test_split(args)
    # a model for other data would give errors that mean nothing: its outputs are not these classes
    if spec.num_classes != len(classes):
        raise UserError(f"checkpoint {args.checkpoint} has {spec.num_classes} classes; the {args.dataset} test set "
                        f"has {len(classes)}")
    # _test_split made fashion-mnist's grey images RGB for the -C/-P recipes: a model takes them as either
    channels = 1 if args.dataset == FASHION_MNIST else images.shape[-1]
    if spec.in_chans not in (channels, images.shape[-1]):
        raise UserError(f"checkpoint {args.checkpoint} takes {spec.in_chans}-channel images; the {args.dataset} test "
                        f"images have {channels}")
    predictor = Predictor(model, spec.mean, spec.std, args.device, args.batch_size)
    # --subset limits official files too, which hold the whole test set (ImageNet-C: per cell)
    result = evaluate(predictor, images, labels, c_source=args.c_source, p_source=args.p_source,
                      protocol=protocol, dataset=args.dataset, frost_dir=args.frost_dir,
                      seed=args.seed, progress=not args.quiet, c_images=args.subset, p_images=args.subset,
                      classes=classes)
    print(result.render())
    warning = chance_level_warning(result.clean_error, len(classes))
    if warning:
        print(warning)
    out = result.save(out)
    print(f"tables written to {out}")


# A model whose accuracy is this close to a uniform guess's has learnt next to nothing: its -C errors
# sit at chance too, and its flip rates are meaninglessly low, since a model that predicts (nearly)
# one class for every image flips for no perturbation. The margin is half a guess's accuracy (an
# untrained model's 0.1 on 10 classes is well inside 0.15), at most 5 points, so that 70% on two
# classes is not called chance.
CHANCE_MARGIN_OF_GUESS = 0.5
MAX_CHANCE_MARGIN = 0.05


def chance_level_warning(clean_error: float, num_classes: int) -> str | None:
    """A one-line warning when ``clean_error`` is at chance level for ``num_classes`` classes: an
    accuracy within the margin above a uniform guess's (see :data:`CHANCE_MARGIN_OF_GUESS`); else None."""
    guess = 1 / num_classes
    margin = min(CHANCE_MARGIN_OF_GUESS * guess, MAX_CHANCE_MARGIN)
    accuracy = 1 - clean_error
    if accuracy >= guess + margin:
        return None
    return (f"warning: clean error {clean_error:.4f} is at chance level for {num_classes} classes (accuracy "
            f"{accuracy:.4f}, within {margin:.4f} of a uniform guess's {guess:.4f}): the model has not learnt the task, "
            f"so its mCE and mFR say nothing about robustness (a model that predicts one class for every image never "
            f"flips: a low mFR); evaluate a trained model")


def cmd_train(args: argparse.Namespace) -> None:
    from ..launch import train
    from ..search.space import load_space
    from ..training.budgets import parse_budget_overrides
    from ..training.trial import TrialConfig, TrialEpoch

    def progress(config: TrialConfig, epoch: TrialEpoch) -> None:
        if not args.quiet:
            r = epoch.report
            print(f"seed {config.seed}  epoch {r.epoch}/{r.epochs}  loss {r.train_loss:.4f}  train error "
                  f"{r.train_error:.4f}  test error {epoch.clean_error:.4f}  {r.images_per_second:.0f} images/s",
                  flush=True)

    trained = train(args.config, space=args.space, dataset=args.dataset, budget=args.budget, seeds=args.seeds,
                    out=args.out, budget_overrides=parse_budget_overrides(args.budget_set), protocol=args.protocol,
                    validation_fraction=args.validation_fraction, image_size=args.image_size, device=args.device,
                    compile=args.compile, data_dir=args.data_dir, stream=args.stream,
                    memory_budget=args.memory_budget, bad_images=args.bad_images, tracking=_tracking(args),
                    quiet=args.quiet, on_epoch=progress)
    table = trained.table
    for row in table[table[Column.STATUS] != TrialStatus.COMPLETED].itertuples():
        print(f"seed {row.seed} failed: {row.failure_reason}")
    _print_skipped(table)
    config = table.iloc[0]  # every seed's record holds the configuration and budget it trained
    normaliser = table[Column.CE_NORMALISER].dropna().iloc[0] if Column.CE_NORMALISER in table else "n/a"
    print(f"\n{load_space(args.space).name} {' '.join(args.config) or '(defaults)'} on {config['dataset']}, budget "
          f"{args.budget} ({config['epochs']} epochs, {config['train_images'] or 'all'} training images, "
          f"{config['eval_images'] or 'all'} test images, -C {config['c_images'] or 'all'} and -P "
          f"{config['p_images'] or 'all'} of them, recipe {config['recipe']}); mCE normalised by {normaliser}")
    print(trained.summary().to_string(index=False, formatters={"mean": "{:.4f}".format,
                                                                "ci95": lambda v: f"+- {v:.4f}"}))
    print(f"records written to {trained.path / RECORDS_STEM}.parquet and .csv")


def _tracking(args: argparse.Namespace):
    """Where --mlflow tracks the trials (None without it)."""
    from ..tracking import Tracking

    if args.mlflow is None:
        if args.mlflow_artifacts:
            raise UserError("--mlflow-artifacts: give --mlflow URI too (the models go to its tracking server)")
        return None
    return Tracking(args.mlflow, args.mlflow_artifacts)


def cmd_run(args: argparse.Namespace) -> None:
    started = time.monotonic()  # the run's phases count the imports below
    from ..launch import run
    from ..reporting.report import analyse, config_table, front_overview, verdict_summary
    from ..search.engine import RunClock, check_complete
    from ..selection.pareto import untested_reported
    from ..training.budgets import parse_budget_overrides

    clock = RunClock(started)
    searched = run(args.space, dataset=args.dataset, budget=args.budget, trials=args.trials, out=args.out,
                   budget_overrides=parse_budget_overrides(args.budget_set), objectives=args.objectives,
                   sampler=args.sampler, scheduler=args.scheduler, seed=args.seed, protocol=args.protocol,
                   validation_fraction=args.validation_fraction, image_size=args.image_size,
                   confirm_seeds=args.confirm_seeds, max_seeds=args.max_seeds, verdict_alpha=args.verdict_alpha,
                   constraints=args.constraint, latency_batch=args.latency_batch, latency_device=args.latency_device,
                   latency_backend=args.latency_backend, seed_from=args.seed_from,
                   cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                   max_concurrent=args.max_concurrent, time_budget=args.time_budget, address=args.address,
                   resume=args.resume, data_dir=args.data_dir, stream=args.stream, memory_budget=args.memory_budget,
                   bad_images=args.bad_images, tracking=_tracking(args), quiet=args.quiet, clock=clock)
    table, settings, out = searched.table, searched.settings, searched.path
    objectives = settings.objectives
    print(f"\n{len(table)} trials: {status_counts(table, FINAL_STATUSES)}", end="")
    if completed(table).empty:
        print("; none completed: no Pareto front")
    elif len(untested_reported(table, objectives)):  # --time-budget spent before they were measured
        print("; the front's and the papers' test values are not all measured yet: no estimates")
    else:
        analysis = analyse(table, settings)
        front = config_table(analysis.summary, analysis.front_ids, analysis.objectives)
        print(f"; Pareto front on {', '.join(objectives)} selected on validation images ({len(front)} configurations; "
              f"test estimates beside them, unprefixed, over the seeds that estimate each: a searched configuration's "
              f"selected seed is left out):")
        print(front_overview(front, objectives).to_string(index=False, float_format="%.4f"))
        print(verdict_summary(analysis))
    for row in table[table[Column.STATUS] == TrialStatus.FAILED].itertuples():
        print(f"failed: {row.trial_id} ({row.origin}): {row.failure_reason}")
    _print_skipped(table)
    print(f"results table: {out / RESULTS_STEM}.parquet and .csv; Optuna study "
          f"{settings.study_name} in {out / JOURNAL_FILE}")
    clock.mark("summary")
    print(clock.render())
    check_complete(searched.study, table, objectives)


def _print_skipped(table) -> None:
    """Undecodable training images skipped under --bad-images skip: said, never silent."""
    skipped = table.get(Column.SKIPPED_IMAGES)
    if skipped is not None and skipped.fillna(0).sum() > 0:
        print(f"skipped {int(skipped.fillna(0).sum())} undecodable training image(s) in "
              f"{int((skipped.fillna(0) > 0).sum())} trial(s) (--bad-images skip; column {Column.SKIPPED_IMAGES})")


def cmd_pick(args: argparse.Namespace) -> None:
    import yaml

    from ..config import typed_config
    from ..reporting.report import check_validation_columns
    from ..selection.pick import against_plain, pick, plain_paper
    from ..selection.uncertainty import Verdict, ci_column, configurations, selected_column

    if len(args.run_dir) > 1:
        _pick_across(args)
        return
    run_dir = Path(args.run_dir[0])
    table, settings = load_run(run_dir)
    check_validation_columns(table, settings.objectives, run_dir)
    objectives = settings.objectives
    row = pick(table, objectives, weights=args.objective_weights,
               max_clean_error_increase=args.max_clean_error_increase, max_latency_ms=args.max_latency_ms,
               max_flops_ratio=args.max_flops_ratio)
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
        exact = " (costs compared exactly)" if set(objectives) & set(COST_METRICS) else ""
        print(f"# against the plain paper model ({plain[Column.ORIGIN]}), Welch t-tests{exact} at alpha "
              f"{settings.verdict_alpha:g}: {comparison.verdict} (seeds {comparison.seeds[0]}, {comparison.seeds[1]}); "
              f"differences with 95% intervals: {differences}")
        if comparison.verdict == Verdict.NOT_SHOWN:
            print("# warning: no difference from the plain paper model is shown (more seeds: ppsearch run ... "
                  "--confirm-seeds auto)")
    print(yaml.safe_dump(typed_config(row), sort_keys=False), end="")


def _pick_across(args: argparse.Namespace) -> None:
    import yaml

    from ..config import typed_config
    from ..reporting.compare import load_runs, pick_across, shared_objectives

    within = {"--objective-weights": args.objective_weights, "--max-clean-error-increase": args.max_clean_error_increase,
              "--max-latency-ms": args.max_latency_ms, "--max-flops-ratio": args.max_flops_ratio}
    given = [flag for flag, value in within.items() if value is not None]
    if given:
        raise UserError(f"{given[0]} picks within one run; across runs the pick is the design on every run's front "
                        f"(or the closest)")
    runs = load_runs(args.run_dir)
    row, ranks = pick_across(runs, shared_objectives(runs))
    ranked = ", ".join(f"{name.removeprefix('rank in ')} {int(rank)}" for name, rank in ranks.items())
    verdict = ("on the validation front of every run" if (ranks == 1).all()
               else "no design is on every run's validation front; the closest")
    print(f"# picked across {len(runs)} runs: {verdict} (Pareto rank on validation values, 1 = front: {ranked})")
    print(f"# configuration {row[Column.CONFIG_ID]} of {runs[0].name} ({row[Column.ORIGIN]})")
    print(yaml.safe_dump(typed_config(row), sort_keys=False), end="")


def cmd_apply(args: argparse.Namespace) -> None:
    from ..files import read_yaml
    from ..models.apply import apply_design
    from ..models.model_file import save_model

    out = check_output(args.out or f"{args.model.replace(':', '-')}-pushpull.safetensors", "file")
    config = read_yaml(args.config, "configuration file")
    if not isinstance(config, dict):
        raise UserError(f"{args.config} must hold a mapping of design keys (as `ppsearch pick` prints)")
    applied = apply_design(config, args.model, checkpoint=args.checkpoint, in_chans=args.in_chans,
                           num_classes=args.num_classes, dataset=args.dataset)
    design = Design.from_mapping(applied.spec.design)
    # `pick` prints the architecture the design was searched on; carrying it to --model is what apply is for
    if config.get("arch", args.model) != args.model:
        print(f"note: the design was picked on {config['arch']} (the configuration's arch); it is put into "
              f"{args.model} (--model), and the configuration's model keys (arch, augmentation, recipe) are not used")
    if applied.antialias_left_out:
        print(f"note: antialias {config.get('antialias')} is not applied, only push-pull: {applied.antialias_left_out}")
    if args.checkpoint is None:
        print(f"note: no --checkpoint: {args.model}'s weights are random, so eval measures an untrained model (at "
              f"chance level); give the plain model's trained weights as --checkpoint")
    if out.suffix == ".onnx":
        from ..models.export import export_onnx

        export_onnx(applied.model, applied.spec, out)
    else:
        save_model(out, applied.model, applied.spec)
    print(f"{args.model}: {len(applied.changes)} convolutions became push-pull ({design.placement}, {design.variant})")
    for change in applied.changes:
        print(f"  {change.name:40s} stage {change.stage}  {change.in_channels}->{change.out_channels} "
              f"k{change.kernel_size} s{change.stride}" + (f" g{change.groups}" if change.groups > 1 else ""))
    print(f"exported to {out} for serving (ONNX)" if out.suffix == ".onnx" else
          f"saved to {out} (a model for {applied.spec.dataset}); evaluate with: ppsearch eval --checkpoint {out} "
          f"--dataset {applied.spec.dataset}")


def cmd_export(args: argparse.Namespace) -> None:
    from ..models.export import export_onnx
    from ..models.model_file import load_model, read_spec

    out = check_output(args.out, "file")
    read_spec(args.model_file)  # a file that is no ppsearch model file is named as such
    model = load_model(args.model_file)
    print(f"{args.model_file} ({model.ppsearch_spec.arch}) exported to {export_onnx(model, model.ppsearch_spec, out)} "
          f"({args.format}); its input: images normalised with mean {list(model.ppsearch_spec.mean)} and std "
          f"{list(model.ppsearch_spec.std)}")


def cmd_report(args: argparse.Namespace) -> None:
    from ..reporting.report import write_report

    if len(args.run_dir) > 1:
        from ..reporting.compare import write_comparison

        out = write_comparison(args.run_dir, check_output(
            args.out or Path(args.run_dir[0]).resolve().parent / "comparison.html", "file"))
        print(f"comparison of {len(args.run_dir)} runs written to {out} (tables: {out.stem}-*.csv)")
        return
    out = write_report(args.run_dir[0], check_output(args.out or Path(args.run_dir[0]) / "report.html", "file"),
                       alpha=args.verdict_alpha)
    print(f"report written to {out} (tables: {out.with_suffix('.md')} and {out.stem}-*.csv)")


def cmd_dashboard(args: argparse.Namespace) -> None:
    import socket

    from ..reporting.dashboard import create_app

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
    # the server returns only when a signal stopped it, having swallowed the KeyboardInterrupt
    # (werkzeug's serve_forever): raise it again, so the dashboard exits as interrupted, not 0
    raise KeyboardInterrupt
