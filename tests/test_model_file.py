"""A model file is checked whole when it is read: its specification against ModelSpec's declared
types and what a model can be built and fed with, its weights against the model's dtypes and for
NaN/inf; and `eval` refuses a model for other data than it is given. Each problem is one line naming
the file and the field or tensor, exit code 2, nothing written.

The files are written with ppsearch's own save_model, then damaged as a hand edit or another tool
would: the metadata rewritten, tensors converted or spoiled."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from ppsearch.cli import main
from ppsearch.config import Design
from ppsearch.data.preprocess import normalisation
from ppsearch.models.model_file import METADATA_KEY, ModelSpec, load_model, save_model

pytestmark = pytest.mark.bad_input

SPEC = ModelSpec("resnet8", Design().to_dict(), 1, 10, "fashion-mnist", *normalisation("fashion-mnist", 1))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("model") / "resnet8.safetensors", SPEC.build(), SPEC)


def _fails(capsys, args: list, message: str) -> None:
    """The command exits with 2 and says exactly ``message``, on one line."""
    assert main([str(a) for a in args]) == 2
    assert capsys.readouterr().err == f"ppsearch: error: {message}\n"


def _eval(checkpoint: Path, out: Path, *extra) -> list:
    return ["eval", "--checkpoint", checkpoint, "--subset", "4", "--c-source", "none", "--p-source", "none",
            "--quiet", "--out", out, *extra]


def _with_metadata(model_file: Path, path: Path, metadata: str) -> Path:
    save_file(load_file(str(model_file)), str(path), metadata={METADATA_KEY: metadata})
    return path


def _spec_json(**changes) -> str:
    return json.dumps({**dataclasses.asdict(SPEC), "version": "0", **changes})


def test_a_good_file_loads_back_as_it_was_saved(model_file):
    model = load_model(model_file)
    assert model.ppsearch_spec == SPEC
    assert all(torch.equal(v, load_file(str(model_file))[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("changes, message", [
    ({"arch": 3}, "arch must be str, got 3"),
    ({"arch": "resnet9"}, "arch: CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got 9"),
    ({"design": None}, "design must be dict[str, typing.Any], got None"),
    ({"design": ["pp"]}, "design must be dict[str, typing.Any], got ['pp']"),
    ({"design": {"alpha": -1}}, "design: alpha must be a finite number >= 0 (the inhibition strength), got -1"),
    ({"design": {"colour": 1}}, "design: unknown design key 'colour'; allowed: placement, variant, scale, "
                                "pull_kernel_size, alpha, trainable_alpha, avg_kernel_size, antialias, "
                                "antialias_position"),
    ({"in_chans": "3"}, "in_chans must be int, got '3'"),
    ({"in_chans": 0}, "in_chans must be >= 1, got 0"),
    ({"num_classes": 1}, "num_classes must be >= 2, got 1"),
    ({"num_classes": 10.0}, "num_classes must be int, got 10.0"),
    ({"num_classes": True}, "num_classes must be int, got True"),
    ({"dataset": "mnist"}, "dataset must be one of fashion-mnist, cifar10, cifar100, imagenet, got 'mnist'"),
    ({"mean": []}, "mean must hold a finite number per input channel (in_chans 1), got []"),
    ({"mean": [0.5, 0.5, 0.5]}, "mean must hold a finite number per input channel (in_chans 1), got [0.5, 0.5, 0.5]"),
    ({"mean": [float("nan")]}, "mean must hold a finite number per input channel (in_chans 1), got [nan]"),
    ({"mean": ["0.5"]}, "mean must be tuple[float, ...], got ['0.5']"),
    ({"std": [0.0]}, "std must hold a finite number > 0 per input channel (in_chans 1), got [0.0]"),
    ({"std": [0.3, 0.3]}, "std must hold a finite number > 0 per input channel (in_chans 1), got [0.3, 0.3]"),
    ({"std": 0.3}, "std must be tuple[float, ...], got 0.3"),
    ({"arch": "timm:mobilenetv3_small_050", "design": {"antialias": "tri3"}},
     "antialias is supported for timm ResNets only, not 'mobilenetv3_small_050'"),
])
def test_a_spec_of_the_wrong_type_or_value_is_named_with_its_file(capsys, tmp_path, model_file, changes, message):
    path = _with_metadata(model_file, tmp_path / "damaged.safetensors", _spec_json(**changes))
    _fails(capsys, _eval(path, tmp_path / "eval"), f"checkpoint {path}: {message}")
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("metadata, message", [
    (json.dumps({k: v for k, v in json.loads(_spec_json()).items() if k != "std"}), "(it lacks std)"),
    ("[1, 2]", "(not a JSON object: [1, 2])"),
])
def test_metadata_that_is_no_spec_is_damaged(capsys, tmp_path, model_file, metadata, message):
    path = _with_metadata(model_file, tmp_path / "damaged.safetensors", metadata)
    _fails(capsys, _eval(path, tmp_path / "eval"), f"checkpoint {path} has damaged ppsearch metadata {message}")


def test_weights_of_another_dtype_are_refused_not_converted(capsys, tmp_path):
    half = save_model(tmp_path / "half.safetensors", SPEC.build().half(), SPEC)
    _fails(capsys, _eval(half, tmp_path / "eval"),
           f"checkpoint {half}: tensor 'stem.0.weight' is float16, the model's is float32")
    state = SPEC.build().state_dict()
    state["fc.weight"] = state["fc.weight"].to(torch.int8)
    quantised = tmp_path / "int8.safetensors"
    save_file(state, str(quantised), metadata={METADATA_KEY: _spec_json()})
    _fails(capsys, _eval(quantised, tmp_path / "eval"),
           f"checkpoint {quantised}: tensor 'fc.weight' is int8, the model's is float32")
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("value, word", [(float("nan"), "NaN"), (float("inf"), "inf"), (-float("inf"), "inf")])
def test_weights_that_are_not_finite_are_refused(capsys, tmp_path, value, word):
    model = SPEC.build()
    with torch.no_grad():
        model.stages[1][0].conv1.weight[0, 0, 1, 1] = value
    path = save_model(tmp_path / "spoiled.safetensors", model, SPEC)
    _fails(capsys, _eval(path, tmp_path / "eval"), f"checkpoint {path}: tensor 'stages.1.0.conv1.weight' holds {word}")
    assert not (tmp_path / "eval").exists()


def test_apply_refuses_plain_weights_that_are_not_finite_or_of_another_dtype(capsys, tmp_path):
    """The same checks hold for every weights file ppsearch loads (``load_weights``): here a plain
    model's checkpoint given to ``apply``."""
    from ppsearch.models import build_model

    design = tmp_path / "design.yaml"
    design.write_text("placement: pp\n")
    state = build_model("timm:resnet18", num_classes=10).state_dict()
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    spoiled = tmp_path / "resnet18.safetensors"
    save_file(state, str(spoiled))
    out = tmp_path / "applied.safetensors"
    command = ["apply", design, "--model", "timm:resnet18", "--num-classes", "10", "--dataset", "cifar10", "--out", out]
    _fails(capsys, [*command, "--checkpoint", spoiled], f"checkpoint {spoiled}: tensor 'conv1.weight' holds NaN")
    state["conv1.weight"] = state["conv1.weight"].nan_to_num().half()
    save_file(state, str(spoiled))
    _fails(capsys, [*command, "--checkpoint", spoiled],
           f"checkpoint {spoiled}: tensor 'conv1.weight' is float16, the model's is float32")
    assert not out.exists()


@pytest.mark.parametrize("in_chans, num_classes, message", [
    (1, 3, "has 3 classes; the fashion-mnist test set has 10"),
    (1, 100, "has 100 classes; the fashion-mnist test set has 10"),
    (2, 10, "takes 2-channel images; the fashion-mnist test images have 1"),
])
def test_eval_refuses_a_model_for_other_data(capsys, tmp_path, in_chans, num_classes, message):
    spec = dataclasses.replace(SPEC, in_chans=in_chans, num_classes=num_classes,
                               mean=(0.5,) * in_chans, std=(0.25,) * in_chans)
    path = save_model(tmp_path / "other.safetensors", spec.build(), spec)
    _fails(capsys, _eval(path, tmp_path / "eval"), f"checkpoint {path} {message}")
    assert not (tmp_path / "eval").exists()


def test_eval_takes_fashion_mnist_as_grey_or_rgb_but_colour_data_not_as_grey(capsys, tmp_path):
    """eval makes fashion-mnist's grey images RGB itself, so 1- and 3-channel models both fit it;
    ImageNet's colour images are not made grey for a 1-channel model."""
    from PIL import Image

    rgb = dataclasses.replace(SPEC, in_chans=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    path = save_model(tmp_path / "rgb.safetensors", rgb.build(), rgb)
    assert main([str(a) for a in _eval(path, tmp_path / "rgb-eval")]) == 0
    assert (tmp_path / "rgb-eval" / "summary.json").is_file()

    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            (root / split / wnid).mkdir(parents=True)
            Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(root / split / wnid / "0.JPEG")
    grey = ModelSpec("resnet8", Design().to_dict(), 1, 2, "imagenet", *normalisation("imagenet", 1))
    path = save_model(tmp_path / "grey.safetensors", grey.build(), grey)
    capsys.readouterr()
    _fails(capsys, _eval(path, tmp_path / "eval", "--data-dir", root, "--image-size", "32"),
           f"checkpoint {path} takes 1-channel images; the imagenet test images have 3")
    assert not (tmp_path / "eval").exists()
