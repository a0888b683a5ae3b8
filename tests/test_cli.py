"""The command line as users run it: real subprocesses, one-line errors, exit code 2."""
import subprocess
import sys

import pytest


def ppsearch(*args):
    return subprocess.run([sys.executable, "-m", "ppsearch", *args], capture_output=True, text=True, timeout=300)


def test_models_lists_architectures():
    result = ppsearch("models")
    assert result.returncode == 0
    assert "resnet20" in result.stdout and "densenet-bc-100-24" in result.stdout and "timm:NAME" in result.stdout


def test_models_profiles_a_design():
    result = ppsearch("models", "--arch", "resnet20", "--placement", "b1", "--variant", "upsample")
    assert result.returncode == 0, result.stderr
    assert "parameters       272,474" in result.stdout
    assert "push-pull layers 7" in result.stdout and "stages.0.2.conv2" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["models", "--arch", "resnet20", "--placement", "b9"],
     "argument --placement: unknown placement 'b9'; allowed: none, pp, b1, b2, all"),
    (["models", "--arch", "alexnet"], "unknown architecture 'alexnet'"),
    (["models", "--arch", "resnet20", "--scale", "0.5"], "scale must be a number >= 1"),
    (["models", "--arch", "resnet20", "--pull-kernel-size", "8"], "pull_kernel_size must be an odd integer"),
    (["models", "--arch", "resnet20", "--variant", "dog"],
     "argument --variant: unknown variant 'dog'; allowed: upsample, minmax_avg"),
    (["models", "--arch", "resnet20", "--scale", "abc"], "scale must be a number >= 1 (the upsampling factor h), got 'abc'"),
    (["models", "--arch", "resnet20", "--alpha", "-1"], "alpha must be a finite number >= 0"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["corrupt", "--dataset", "fashion-mnist", "--out", "x", "--device", "banana"],
     "argument --device: must be cpu, cuda or cuda:N, got 'banana'"),
    (["eval", "--checkpoint", "x.safetensors", "--device", "cuda:7"], "argument --device: cuda:7: no such CUDA device"),
    (["corrupt", "--dataset", "fashion-mnist", "--out", "x", "--seed", str(2**32)],
     "argument --seed: must be an integer from 0 to 4294967295, got '4294967296'"),
    (["run", "--seed", str(2**64)], "argument --seed: must be an integer from 0 to 4294967295"),
    (["run", "--seed", "-1"], "argument --seed: must be an integer from 0 to 4294967295, got '-1'"),
])
@pytest.mark.bad_input
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = ppsearch(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--sampler", "cmaes"], "argument --sampler: unknown sampler 'cmaes'; allowed: tpe, nsga2, gp, random"),
    (["--scheduler", "asha"], "argument --scheduler: unknown scheduler 'asha'; allowed: moasha, none"),
    (["--objectives", "clean_error,foo"], "argument --objectives: 'clean_error,foo': unknown objective 'foo'; allowed: "
                                          "clean_error, mce, mfr, relative_mce, corruption_error, params, flops, latency_ms"),
    (["--objectives", "mce,mce"], "argument --objectives: 'mce,mce': objectives repeat: mce, mce"),
    (["--protocol", "nope"], "argument --protocol: unknown protocol 'nope'; allowed: seed-paper, hendrycks"),
    (["--dataset", "mnist"], "argument --dataset: unknown dataset 'mnist'; allowed: fashion-mnist, cifar10, cifar100, imagenet"),
    (["--budget", "week"], "argument --budget: unknown budget 'week'; allowed: smoke, demo, short, paper"),
    (["--stream", "sometimes"], "argument --stream: unknown stream mode 'sometimes'; allowed: auto, always, never"),
    (["--bad-images", "ignore"], "argument --bad-images: unknown bad-images policy 'ignore'; allowed: fail, skip"),
])
@pytest.mark.bad_input
def test_a_name_outside_its_registry_is_refused_by_the_parser(tmp_path, args, message):
    out = tmp_path / "run"
    result = ppsearch("run", "--out", str(out), *args)
    assert result.returncode == 2
    assert result.stderr == f"ppsearch: error: {message}\n"
    assert not out.exists()  # refused before anything was written


def test_run_help_lists_the_registries():
    from ppsearch.search.strategies import SAMPLERS, Scheduler

    result = ppsearch("run", "--help")
    assert result.returncode == 0, result.stderr
    assert "{" + ",".join(SAMPLERS) + "}" in result.stdout and "{" + ",".join(Scheduler) + "}" in result.stdout
    assert "ray://" in result.stdout and "refused" in result.stdout  # --address: what connect_ray accepts


_SHARED = ["--space", "wrn-cifar", "--dataset", "cifar100", "--data-dir", "/data", "--image-size", "64",
           "--stream", "always", "--memory-budget", "2", "--bad-images", "skip", "--budget", "smoke",
           "--budget-set", "epochs=1", "--protocol", "hendrycks", "--validation-fraction", "0.2", "--quiet"]


@pytest.mark.parametrize("command", ["train", "run"])
def test_train_and_run_take_the_shared_flags_alike(command):
    from ppsearch.cli import build_parser

    args = build_parser().parse_args([command, *_SHARED])
    assert (args.space, args.dataset, args.data_dir, args.image_size, args.stream, args.memory_budget,
            args.bad_images, args.budget, args.budget_set, args.protocol, args.validation_fraction, args.quiet) == (
        "wrn-cifar", "cifar100", "/data", 64, "always", 2.0, "skip", "smoke", ["epochs=1"], "hendrycks", 0.2, True)


def test_a_search_holds_out_validation_images_unless_told_and_train_does_not():
    from ppsearch.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["run"]).validation_fraction == 0.1
    assert parser.parse_args(["train"]).validation_fraction is None


def _parsers():
    import argparse

    from ppsearch.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices.items()


def test_every_default_is_one_of_its_choices():
    for name, parser in _parsers():
        for action in parser._actions:
            if action.choices is not None and action.default is not None:
                assert action.default in action.choices, f"{name} {action.option_strings}"


def test_the_choices_are_the_librarys_names():
    """The torch-free registries the parser offers are the lists the library works with."""
    from ppsearch.data.datasets import DATASETS
    from ppsearch.robustness.corruptions import ALL_CORRUPTIONS, CORRUPTIONS
    from ppsearch.robustness.metrics import PROTOCOLS
    from ppsearch.robustness.names import PROTOCOL_NAMES
    from ppsearch.robustness.perturbations import ALL_PERTURBATIONS, PERTURBATIONS
    from ppsearch.training.budgets import BUDGETS
    from ppsearch.training.names import BUDGET_NAMES

    assert tuple(PROTOCOLS) == PROTOCOL_NAMES and tuple(BUDGETS) == BUDGET_NAMES
    assert sorted(CORRUPTIONS) == sorted(ALL_CORRUPTIONS) and sorted(PERTURBATIONS) == sorted(ALL_PERTURBATIONS)
    choices = {flag: action.choices for _, parser in _parsers() for action in parser._actions
               for flag in action.option_strings}
    assert choices["--protocol"] == PROTOCOL_NAMES and choices["--budget"] == BUDGET_NAMES
    assert choices["--dataset"] == DATASETS


def test_help_does_not_import_torch():
    code = ("import sys, contextlib, io\nfrom ppsearch.cli import main\n"
            "for command in ('models', 'corrupt', 'eval', 'train', 'run', 'pick', 'apply', 'report', 'dashboard'):\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        main([command, '--help'])\n"
            "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch not imported"


def test_corrupt_counts_what_it_wrote(tmp_path):
    import json

    result = ppsearch("corrupt", "--dataset", "fashion-mnist", "--subset", "2", "--quiet", "--out", str(tmp_path / "sets"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "sets" / "manifest.json").read_text())
    assert result.stdout == (f"wrote 2 images x {len(manifest['corruptions'])} corruptions x "
                             f"{len(manifest['severities'])} severities and {len(manifest['perturbations'])} "
                             f"perturbations to {tmp_path / 'sets'}\n")


def test_version_is_the_packages():
    from importlib.metadata import version

    import ppsearch as package

    result = ppsearch("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ppsearch {package.__version__}\n"
    assert package.__version__ == version("ppsearch")  # pyproject.toml reads it: one declaration


def test_every_subcommands_help_ends_with_an_example_that_parses():
    import shlex

    from ppsearch.cli import build_parser
    from ppsearch.cli.arguments import attach_option_values
    from ppsearch.cli.parser import EXAMPLE_PREFIX

    for name, parser in _parsers():
        assert parser.epilog and parser.epilog.startswith(EXAMPLE_PREFIX), name
        words = shlex.split(parser.epilog.removeprefix(EXAMPLE_PREFIX))
        command = words[:words.index(">")] if ">" in words else words  # `pick ... > picked.yaml`: the shell's
        assert command[:2] == ["ppsearch", name]
        assert build_parser().parse_args(attach_option_values(command[1:])).command == name
        assert parser.format_help().rstrip("\n").endswith("\n" + parser.epilog)  # whole, on one line


def test_help_shows_the_example_last():
    result = ppsearch("report", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "example: ppsearch report runs/search/resnet-cifar-fashion-mnist-demo"
