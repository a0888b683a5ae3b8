"""Bad input at every entry point: one line naming the problem, exit code 2, nothing written.

Each case was found by trying ppsearch as a new user would (issue 11). The commands run in-process
through the same `main` the `ppsearch` script calls.
"""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from run_dirs import write_run
from safetensors.torch import save_file

from ppsearch.cli import main
from ppsearch.config import Design
from ppsearch.models import build_model
from ppsearch.models.model_file import ModelSpec, save_model

pytestmark = pytest.mark.bad_input

UNWRITABLE = Path("/sys/ppsearch-out")  # sysfs refuses new files, even to root


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "resnet8.safetensors"
    spec = ModelSpec("resnet8", Design().to_dict(), 1, 10, "fashion-mnist", (0.286,), (0.353,))
    return save_model(path, build_model("resnet8", in_chans=1), spec)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    rows = [{"trial_id": "00000", "origin": "paper:resnet20", "status": "completed", "placement": "none",
             "clean_error": 0.1, "mce": 1.0, "mfr": 1.0},
            {"trial_id": "00001", "origin": "searched", "status": "completed", "placement": "pp",
             "clean_error": 0.12, "mce": 0.9, "mfr": 1.1}]
    return write_run(tmp_path_factory.mktemp("run") / "run", rows)


@pytest.fixture(scope="module")
def design_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("design") / "picked.yaml"
    path.write_text("placement: pp\n")
    return path


def _fails(capsys, args: list[str], message: str) -> None:
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("args, message", [
    (["models", "--in-chans", "0"], "argument --in-chans: must be an integer >= 1, got '0'"),
    (["models", "--num-classes", "-3"], "argument --num-classes: must be an integer >= 2, got '-3'"),
    (["models", "--arch", "resnet20", "--image-size", "0"], "argument --image-size: must be an integer >= 8"),
    (["models", "--arch", "resnet20", "--latency", "--latency-batch", "0"],
     "argument --latency-batch: must be an integer >= 1, got '0'"),
    (["models", "--arch", "resnet20", "--latency", "--device", "cuda:7"],
     "argument --device: cuda:7: no such CUDA device here"),
    (["models", "--arch", "resnet20", "--alpha", "-1"], "alpha must be a finite number >= 0"),
    (["models", "--arch", "resnet20", "--alpha", "nan"], "alpha must be a finite number >= 0"),
    (["dashboard", "x", "--port", "99999"], "argument --port: must be an integer from 1 to 65535, got '99999'"),
    (["run", "--time-budget", "-5"], "argument --time-budget: must be a finite number > 0, got '-5'"),
    (["run", "--max-concurrent", "-2"], "argument --max-concurrent: must be an integer >= 0, got '-2'"),
    (["run", "--cpus-per-trial", "0"], "argument --cpus-per-trial: must be a finite number > 0"),
    (["eval", "--checkpoint", "m.safetensors", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    (["train", "--seeds", "0"], "argument --seeds: must be an integer >= 1, got '0'"),
    (["run", "--confirm-seeds", "0"], "argument --confirm-seeds: must be an integer >= 1 or auto, got '0'"),
    (["run", "--confirm-seeds", "-2"], "argument --confirm-seeds: must be an integer >= 1 or auto, got '-2'"),
    (["run", "--validation-fraction", "0"], "argument --validation-fraction: must be a finite number > 0"),
    (["run", "--validation-fraction", "0.6"], "argument --validation-fraction: must be in (0, 0.5], got '0.6'"),
    (["train", "--validation-fraction", "nan"], "argument --validation-fraction: must be a finite number > 0"),
    (["run", "--confirm-seeds", "many"], "argument --confirm-seeds: must be an integer >= 1 or auto, got 'many'"),
    (["run", "--confirm-seeds", "auto", "--max-seeds", "2"], "argument --max-seeds: must be an integer >= 3, got '2'"),
    (["run", "--confirm-seeds", "auto", "--max-seeds", "4.5"],
     "argument --max-seeds: must be an integer >= 3, got '4.5'"),
    (["run", "--verdict-alpha", "0.5"], "argument --verdict-alpha: must be in (0, 0.5), got '0.5'"),
    (["run", "--verdict-alpha", "0"], "argument --verdict-alpha: must be a finite number > 0, got '0'"),
    (["report", "x", "--verdict-alpha", "nan"], "argument --verdict-alpha: must be a finite number > 0, got 'nan'"),
    (["report", "x", "--verdict-alpha", "0.7"], "argument --verdict-alpha: must be in (0, 0.5), got '0.7'"),
])
def test_numbers_are_checked_where_they_enter(capsys, args, message):
    _fails(capsys, args, message)


@pytest.mark.parametrize("extra, message", [
    (["--objective-weights", "nan,1,1"], "argument --objective-weights: must be comma-separated finite numbers >= 0"),
    (["--objective-weights", "1,inf,1"], "argument --objective-weights: must be comma-separated finite numbers >= 0"),
    (["--objective-weights", "-1,1,1"], "argument --objective-weights: must be comma-separated finite numbers >= 0"),
    (["--objective-weights", "0,0,0"], "not all 0, got '0,0,0'"),
    (["--max-clean-error-increase", "1e309"], "argument --max-clean-error-increase: must be a finite number"),
    (["--max-clean-error-increase", "nan"], "argument --max-clean-error-increase: must be a finite number"),
])
def test_pick_refuses_weights_and_limits_that_pick_nothing_meaningful(capsys, run_dir, extra, message):
    _fails(capsys, ["pick", run_dir, *extra], message)


def test_unwritable_outputs_are_refused_before_any_work(capsys, tmp_path, run_dir, model_file, design_file):
    long_name = tmp_path / ("a" * 300) / "run"
    cases = [
        (["report", run_dir, "--out", UNWRITABLE / "report.html"], "cannot write in /sys"),
        (["corrupt", "--dataset", "fashion-mnist", "--out", UNWRITABLE], "cannot write in /sys"),
        (["eval", "--checkpoint", model_file, "--out", UNWRITABLE], "cannot write in /sys"),
        (["train", "--config", "arch=resnet8", "--budget", "smoke", "--out", UNWRITABLE], "cannot write in /sys"),
        (["run", "--dataset", "fashion-mnist", "--out", UNWRITABLE], "cannot write in /sys"),
        (["apply", design_file, "--model", "resnet20", "--out", UNWRITABLE / "m.safetensors"], "cannot write in /sys"),
        (["apply", design_file, "--model", "resnet20", "--out", tmp_path], "is a directory; a file is needed there"),
        (["run", "--dataset", "fashion-mnist", "--out", long_name], "is 300 bytes long; this file system allows 255"),
        (["train", "--budget", "smoke", "--out", design_file / "sub"], "is a file, not a directory"),
    ]
    for args, message in cases:
        _fails(capsys, args, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no `.partial` or half-made run left


def test_a_bad_configuration_fails_before_sets_are_made_and_leaves_nothing(capsys, tmp_path):
    _fails(capsys, ["train", "--config", "arch=resnet21", "--budget", "smoke", "--out", tmp_path / "t"],
           "CIFAR ResNet depth must be 6n+2")
    _fails(capsys, ["run", "--dataset", "cifar10", "--data-dir", tmp_path / "nowhere", "--budget", "smoke",
                    "--out", tmp_path / "r"], "cifar-10")
    assert not (tmp_path / "t").exists() and not (tmp_path / "r").exists()
    # the corrected command is then accepted on the same --out (no run.json of the failed one)
    assert not (tmp_path / "r" / "run.json").exists()


@pytest.mark.parametrize("content, message", [
    (b"not a checkpoint", "is not a readable safetensors file"),
])
def test_apply_refuses_files_that_are_not_weights(capsys, tmp_path, design_file, content, message):
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(content)
    _fails(capsys, ["apply", design_file, "--model", "resnet20", "--checkpoint", bad, "--out", tmp_path / "o.st"],
           message)


def test_apply_never_unpickles_code_and_names_the_tensor_that_does_not_fit(capsys, tmp_path, design_file):
    with_objects = tmp_path / "objects.pth"
    torch.save({"state_dict": {}, "optimizer": pickle.Pickler}, with_objects)
    _fails(capsys, ["apply", design_file, "--model", "resnet20", "--dataset", "cifar10", "--checkpoint", with_objects],
           "holds a Python object (pickle.Pickler) besides tensors")
    text = tmp_path / "text.pth"
    text.write_text("hello\n")
    _fails(capsys, ["apply", design_file, "--model", "resnet20", "--dataset", "cifar10", "--checkpoint", text], "is not a torch checkpoint")
    other = tmp_path / "resnet32.pth"
    torch.save({"state_dict": build_model("resnet32").state_dict()}, other)
    _fails(capsys, ["apply", design_file, "--model", "resnet20", "--dataset", "cifar10", "--checkpoint", other],
           "holds tensor 'stages.0.3.bn1.bias', which ResNetCifar does not have")
    partial = torch.load(other)["state_dict"]
    partial["fc.weight"] = torch.zeros(3, 64)
    torch.save(partial, other)
    _fails(capsys, ["apply", design_file, "--model", "resnet32", "--dataset", "cifar10", "--checkpoint", other],
           "tensor 'fc.weight' has shape (3, 64), ResNetCifar expects (10, 64)")


def test_apply_checks_the_model_and_the_design_before_saying_anything(capsys, tmp_path, design_file):
    aa = tmp_path / "aa.yaml"
    aa.write_text("placement: pp\nantialias: tri3\n")
    assert main(["apply", str(aa), "--model", "timm:not_a_model", "--checkpoint", "x.pth"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unknown timm model 'not_a_model'" in captured.err
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    _fails(capsys, ["apply", empty, "--model", "resnet20"], "must hold a mapping of design keys")
    no_design = tmp_path / "arch.yaml"
    no_design.write_text("arch: resnet20\n")
    _fails(capsys, ["apply", no_design, "--model", "resnet20"], "holds no design key")


def test_an_official_set_with_images_of_another_size_is_refused_before_evaluating(capsys, tmp_path, model_file):
    from ppsearch.robustness.corruptions import BENCHMARK_CORRUPTIONS

    folder = tmp_path / "Fashion-MNIST-C"
    folder.mkdir()
    for name in BENCHMARK_CORRUPTIONS:
        size = 28 if name == "fog" else 32
        np.save(folder / f"{name}.npy", np.zeros((5 * 4, size, size, 3), np.uint8))
    np.save(folder / "labels.npy", np.zeros(5 * 4, np.int64))
    _fails(capsys, ["eval", "--checkpoint", model_file, "--dataset", "fashion-mnist", "--subset", "4",
                    "--c-source", f"official:{folder}", "--p-source", "none", "--out", tmp_path / "eval"],
           "fog.npy holds 28x28 images; the test images are 32x32")
    assert not (tmp_path / "eval").exists()


def test_damaged_files_are_named(capsys, tmp_path):
    from ppsearch.errors import UserError
    from ppsearch.training.checkpoint import load_training_checkpoint

    bad_metadata = tmp_path / "bad.safetensors"
    save_file({"w": torch.zeros(1)}, str(bad_metadata), metadata={"ppsearch": '{"arch": "resnet8", "des'})
    _fails(capsys, ["eval", "--checkpoint", bad_metadata], f"checkpoint {bad_metadata} has damaged ppsearch metadata")
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "state.json").write_text('{"epoch": 3, "rng": ')
    with pytest.raises(UserError, match=f"{checkpoint / 'state.json'} is not valid JSON"):
        load_training_checkpoint(checkpoint, torch.nn.Linear(1, 1), torch.optim.SGD([torch.zeros(1)], lr=0.1))
