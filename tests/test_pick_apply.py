"""`ppsearch pick` and `ppsearch apply`: a configuration from a run's front onto timm models."""


import pandas as pd
import pytest
import torch
import yaml
from run_dirs import write_run

from ppsearch.cli import main
from ppsearch.layers import BlurPool2d, PushPull2d
from ppsearch.models import build_model
from ppsearch.models.model_file import load_model


def _run_dir(tmp_path):
    rows = [
        # origin, placement, antialias, clean_error, mce, mfr
        ("paper:resnet20", "none", "none", 0.100, 1.00, 1.00),
        ("paper:resnet20-pp", "pp", "none", 0.105, 0.90, 0.95),
        ("searched", "b1", "rect2", 0.120, 0.70, 0.80),  # most robust, +2 points clean error
        ("searched", "pp", "tri3", 0.104, 0.85, 0.90),  # the knee
    ]
    table = pd.DataFrame([{"trial_id": f"t{i}", "origin": o, "status": "completed", "arch": "resnet20",
                           "augmentation": "standard", "recipe": "fast", "placement": p, "variant": "upsample",
                           "scale": 2.0, "pull_kernel_size": None, "alpha": 1.0, "trainable_alpha": False,
                           "avg_kernel_size": 0.0, "antialias": aa, "config_id": f"t{i}",
                           # test values a little worse than the validation ones it is chosen on
                           "clean_error": e + 0.01, "mce": c + 0.01, "mfr": f + 0.01,
                           "val_clean_error": e, "val_mce": c, "val_mfr": f}
                          for i, (o, p, aa, e, c, f) in enumerate(rows)])
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "trial_id": "t9", "config_id": "t9", "status": "pruned",
                             "val_clean_error": 0.01, "val_mce": 0.01, "val_mfr": 0.01}  # never picked
    return write_run(tmp_path / "run", table)


def test_pick_reports_an_unbiased_estimate_and_its_comparison_with_the_plain_model(tmp_path, capsys):
    table = pd.read_parquet(_run_dir(tmp_path) / "results.parquet")
    seeds = [table.iloc[i].to_dict() | {"trial_id": f"t{i}-seed{k}", "clean_error": table.iloc[i]["clean_error"] + d,
                                        "mce": table.iloc[i]["mce"] + d, "mfr": table.iloc[i]["mfr"] + d}
             for i in (0, 3) for k, d in ((1, 0.002), (2, -0.002))]
    run = write_run(tmp_path / "seeded", pd.concat([table, pd.DataFrame(seeds)]))
    assert main(["pick", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "configuration t3 (searched), chosen on validation means: clean_error 0.1040, mce 0.8500" in lines[0]
    # its confirmation seeds 0.116 and 0.112: mean 0.114 +- t(0.975, 1) * 0.002 * sqrt(2) / sqrt(2) = 0.0254; its
    # selected seed t3 (0.114) is shown apart
    assert "over its 2 confirmation seed(s), mean with 95% interval: clean_error 0.1140 +- 0.0254" in lines[1]
    assert "its selected seed (biased by the selection, left out): clean_error 0.1140" in lines[1]
    # the plain model: 0.110 over 3 seeds; t3 is worse on clean error, better on mce and mfr: no verdict
    assert lines[2].startswith("# against the plain paper model (paper:resnet20), Welch t-tests at alpha 0.05: "
                               "not shown (seeds 2, 3); differences with 95% intervals: clean_error +0.0040 [")
    assert lines[3].startswith("# warning: no difference from the plain paper model is shown")


def _pick(capsys, *args):
    assert main(["pick", *args]) == 0
    out = capsys.readouterr().out
    return out.splitlines()[0], yaml.safe_load(out)


def test_pick_the_knee_or_under_constraints(tmp_path, capsys):
    run = _run_dir(tmp_path)
    header, config = _pick(capsys, str(run))
    assert "configuration t3 (searched)" in header
    assert config == {"arch": "resnet20", "augmentation": "standard", "recipe": "fast", "placement": "pp",
                      "variant": "upsample", "scale": 2.0, "pull_kernel_size": None, "alpha": 1.0,
                      "trainable_alpha": False, "avg_kernel_size": 0, "antialias": "tri3"}
    assert _pick(capsys, str(run), "--objective-weights", "0,1,0")[1]["placement"] == "b1"
    # b1 costs 2 points of clean error over the plain paper model: a 1-point limit rules it out
    assert "configuration t3" in _pick(capsys, str(run), "--objective-weights", "0,1,0",
                                       "--max-clean-error-increase", "1")[0]


@pytest.mark.parametrize("args, message", [
    (["--objective-weights", "1,2"], "--objective-weights needs 3 non-negative numbers"),
    (["--objective-weights", "1,x,2"], "--objective-weights: must be comma-separated finite numbers"),
    (["--max-clean-error-increase", "-5"], "no front configuration has validation clean error <="),
])
@pytest.mark.bad_input
def test_pick_bad_input(tmp_path, capsys, args, message):
    assert main(["pick", str(_run_dir(tmp_path)), *args]) == 2
    assert message in capsys.readouterr().err


def test_pick_needs_a_results_table(tmp_path, capsys):
    assert main(["pick", str(tmp_path)]) == 2
    assert "has no results table" in capsys.readouterr().err
    write_run(tmp_path, [{"trial": 1}], objectives=("clean_error",))
    assert main(["pick", str(tmp_path)]) == 2
    assert "written by an older ppsearch" in capsys.readouterr().err


@pytest.mark.parametrize("model, antialias, converted", [("timm:resnet18", "tri3", "conv1"),
                                                          ("timm:convnext_atto", "tri3", "stem.0")])
def test_apply_carries_a_configuration_to_a_timm_model(tmp_path, capsys, model, antialias, converted):
    config = tmp_path / "picked.yaml"
    config.write_text(yaml.safe_dump({"placement": "pp", "variant": "upsample", "alpha": 0.5, "antialias": antialias}))
    plain = build_model(model, num_classes=10)
    weights = tmp_path / "plain.pth"
    torch.save(plain.state_dict(), weights)
    out = tmp_path / "model.safetensors"
    assert main(["apply", str(config), "--model", model, "--checkpoint", str(weights), "--num-classes", "10",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 convolutions became push-pull" in printed and converted in printed
    model_back = load_model(out)
    spec = model_back.ppsearch_spec  # what `ppsearch eval --checkpoint` does
    layer = model_back.get_submodule(converted)
    assert isinstance(layer, PushPull2d) and layer.alpha == 0.5
    assert torch.equal(layer.weight, plain.get_submodule(converted).weight)  # the plain weights carried over
    blurred = model.startswith("timm:resnet")  # timm has an anti-aliasing hook for ResNets only
    assert any(isinstance(m, BlurPool2d) for m in model_back.modules()) == blurred
    assert spec.design["antialias"] == ("tri3" if blurred else "none")
    assert ("note: antialias tri3 is not applied" in printed) == (not blurred)


@pytest.mark.parametrize("content, args, message", [
    ("placement: pp\ncolour: red\n", ["--model", "timm:resnet18"], "unknown configuration key 'colour'"),
    ("placement: pp\n", ["--model", "timm:resnet9000"], "unknown timm model 'resnet9000'"),
    ("placement: pp\n", ["--model", "timm:resnet18", "--checkpoint", "/nonexistent.pth"], "checkpoint /nonexistent.pth does not exist"),
    ("[1, 2]\n", ["--model", "timm:resnet18"], "must hold a mapping of design keys"),
    # built for 224x224 images only
    ("placement: pp\n", ["--model", "timm:vit_tiny_patch16_224", "--dataset", "cifar10", "--num-classes", "10"],
     "timm:vit_tiny_patch16_224 does not run on 3-channel 32x32 images: AssertionError: Input height (32) doesn't "
     "match model (224)"),
    ("placement: pp\n", ["--model", "timm:mixer_b16_224", "--dataset", "cifar10", "--num-classes", "10"],
     "timm:mixer_b16_224 does not run on 3-channel 32x32 images: AssertionError"),
    # TensorFlow-style 'same' padding: timm's Conv2dSame, which the surgery leaves alone
    ("placement: pp\n", ["--model", "timm:tf_efficientnet_b0"],
     "EfficientNet has no convolution that placement pp can make push-pull (it takes square nn.Conv2d kernels"),
    # a CIFAR-size model fits any of the small datasets: recorded as another's, eval would measure it on the wrong data
    ("placement: pp\n", ["--model", "resnet20", "--num-classes", "10"],
     "resnet20 is a CIFAR-size model: name the data it is for with --dataset (fashion-mnist, cifar10, cifar100), or "
     "give a ppsearch model file of that data as --checkpoint"),
    ("placement: pp\n", ["--model", "resnet20", "--dataset", "cifar10", "--in-chans", "1", "--num-classes", "10"],
     "in_chans 1 does not fit cifar10's 3-channel images: a model for cifar10 takes 3 input channels"),
    ("placement: pp\n", ["--model", "resnet20", "--dataset", "fashion-mnist", "--in-chans", "2", "--num-classes", "10"],
     "in_chans 2 does not fit fashion-mnist's 1-channel images: a model for fashion-mnist takes 1 or 3 input channels"),
    ("placement: pp\n", ["--model", "timm:resnet18", "--num-classes", "1"],
     "argument --num-classes: must be an integer >= 2, got '1'"),
    ("placement: pp\n", ["--model", "timm:resnet18", "--num-classes", "99999999999"],
     "timm:resnet18 with in_chans=3 and num_classes=99999999999 has about 51,300,011,175,999 parameters ("),
])
@pytest.mark.bad_input
def test_apply_bad_input(tmp_path, capsys, content, args, message):
    config = tmp_path / "picked.yaml"
    config.write_text(content)
    out = tmp_path / "m.safetensors"
    assert main(["apply", str(config), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_apply_puts_a_vit_patch_embedding_in_push_pull_at_imagenet_size(tmp_path, capsys):
    config = tmp_path / "picked.yaml"
    config.write_text("placement: pp\n")
    out = tmp_path / "vit.safetensors"
    assert main(["apply", str(config), "--model", "timm:vit_tiny_patch16_224", "--num-classes", "10",
                 "--out", str(out)]) == 0
    assert "1 convolutions became push-pull" in capsys.readouterr().out
    model = load_model(out)  # rebuilt by `ppsearch eval`: traced at the 224x224 it is built for
    assert isinstance(model.patch_embed.proj, PushPull2d)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


@pytest.mark.parametrize("arch, noted", [("densenet-bc-40-12", True), ("resnet20", False)])
def test_apply_says_the_design_was_picked_on_another_architecture(tmp_path, capsys, arch, noted):
    # what `ppsearch pick` prints names the architecture searched; apply carries the design to --model
    config = tmp_path / "picked.yaml"
    config.write_text(f"arch: {arch}\nplacement: pp\n")
    assert main(["apply", str(config), "--model", "resnet20", "--dataset", "cifar10", "--num-classes", "10",
                 "--out", str(tmp_path / "m.safetensors")]) == 0
    printed = capsys.readouterr().out
    assert ("note: the design was picked on densenet-bc-40-12 (the configuration's arch); it is put into resnet20 "
            "(--model)" in printed) == noted
    assert isinstance(load_model(tmp_path / "m.safetensors").stem[0], PushPull2d)


@pytest.mark.parametrize("args, dataset, classes", [
    (["--model", "resnet20", "--dataset", "cifar10"], "cifar10", 10),
    (["--model", "resnet20", "--dataset", "cifar100"], "cifar100", 100),
    (["--model", "resnet20", "--checkpoint", "MODEL_FILE"], "fashion-mnist", 7),  # what the model file records
    (["--model", "timm:resnet18"], "imagenet", 1000),
])
def test_apply_records_the_models_dataset_and_says_how_to_evaluate_it(tmp_path, capsys, args, dataset, classes):
    """Without --dataset and --num-classes, a model is for the data and classes of the ppsearch model
    file it is given, else for its dataset's classes (1,000 for an ImageNet-size model)."""
    import shlex

    from ppsearch.cli import build_parser
    from ppsearch.config import Design
    from ppsearch.data.preprocess import normalisation
    from ppsearch.models.model_file import ModelSpec, save_model

    plain = ModelSpec("resnet20", Design().to_dict(), 3, 7, "fashion-mnist", *normalisation("fashion-mnist", 3))
    model_file = save_model(tmp_path / "plain.safetensors", plain.build(), plain)  # as a trial of a run writes it
    config = tmp_path / "picked.yaml"
    config.write_text("placement: pp\n")
    out = tmp_path / "m.safetensors"
    args = [str(model_file) if a == "MODEL_FILE" else a for a in args]
    assert main(["apply", str(config), *args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    spec = load_model(out).ppsearch_spec
    assert (spec.dataset, spec.num_classes) == (dataset, classes)
    suggested = printed.splitlines()[-1].split("evaluate with: ")[1]
    assert suggested == f"ppsearch eval --checkpoint {out} --dataset {dataset}"
    assert build_parser().parse_args(shlex.split(suggested)[1:]).dataset == dataset
    assert (f"note: no --checkpoint: {args[1]}'s weights are random" in printed) == ("--checkpoint" not in args)


def test_apply_says_why_it_leaves_anti_aliasing_out(tmp_path, capsys):
    # the seed code's -lpf ResNets blur at the block input; timm's ResNet hook takes the blur after conv1 only
    config = tmp_path / "picked.yaml"
    config.write_text("placement: pp\nantialias: tri3\nantialias_position: block_input\n")
    out = tmp_path / "m.safetensors"
    assert main(["apply", str(config), "--model", "timm:resnet18", "--num-classes", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("note: antialias tri3 is not applied, only push-pull: timm's ResNets place the blur after conv1 (Zhang), "
            "not at the block input (antialias_position block_input): use antialias_position=after_conv1 for "
            "'resnet18'\n") in printed
    assert not any(isinstance(m, BlurPool2d) for m in load_model(out).modules())
