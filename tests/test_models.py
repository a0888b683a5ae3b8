"""The model zoo: placement is one knob, and push-pull never changes the trainable parameter count."""
import re

import pytest
import torch

from ppsearch import PushPull2d, build_model
from ppsearch.cli import main
from ppsearch.errors import UserError
from ppsearch.models.profile import profile_model


def pushpull_names(model):
    return [name for name, m in model.named_modules() if isinstance(m, PushPull2d)]


def n_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


STAGE1 = [f"stages.0.{b}.conv{c}" for b in range(3) for c in (1, 2)]


@pytest.mark.parametrize("placement, expected", [
    ("none", []),
    ("pp", ["stem.0"]),
    ("b1", ["stem.0"] + STAGE1),
])
def test_resnet20_placement_replaces_the_papers_layers(placement, expected):
    assert pushpull_names(build_model("resnet20", placement=placement)) == expected


def test_deeper_placements_cover_more_stages():
    assert len(pushpull_names(build_model("resnet20", placement="b2"))) == 1 + 6 + 6
    assert len(pushpull_names(build_model("resnet20", placement="all"))) == 1 + 18


@pytest.mark.parametrize("arch, b1_layers", [("resnet20", 7), ("wrn-16-4", 5), ("densenet-bc-40-12", 7)])
@pytest.mark.parametrize("variant", ["upsample", "minmax_avg"])
def test_pushpull_keeps_the_trainable_parameter_count(arch, b1_layers, variant):
    plain = build_model(arch)
    model = build_model(arch, placement="b1", variant=variant, antialias="tri3")
    assert len(pushpull_names(model)) == b1_layers
    assert n_params(model) == n_params(plain)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)


def test_trainable_alpha_adds_one_parameter_per_output_channel():
    plain, model = build_model("resnet20"), build_model("resnet20", placement="b1", trainable_alpha=True)
    assert n_params(model) - n_params(plain) == 7 * 16


@pytest.mark.parametrize("variant", ["upsample", "minmax_avg"])
def test_one_seed_gives_push_pull_the_plain_models_weights(variant):
    """Push-pull goes in after the plain model is initialised (its alphas drawn last), so with one seed
    a design and the plain model differ only by the inhibition: every plain tensor is the same."""
    torch.manual_seed(0)
    plain = build_model("resnet20").state_dict()
    torch.manual_seed(0)
    model = build_model("resnet20", placement="b2", variant=variant, trainable_alpha=True).state_dict()
    assert set(plain) < set(model) and all(name.endswith(".alpha") for name in set(model) - set(plain))
    assert all(torch.equal(plain[name], model[name]) for name in plain)


def test_densenet_b1_replaces_only_the_3x3_convs_of_the_first_block():
    names = pushpull_names(build_model("densenet-bc-40-12", placement="b1"))
    assert names == ["stem"] + [f"stages.0.{i}.conv" for i in range(6)]


@pytest.mark.parametrize("antialias", ["none", "rect2", "tri3", "bin5", 1, 7])
def test_antialiased_resnet_keeps_shapes_and_parameters(antialias):
    model = build_model("resnet20", placement="b1", antialias=antialias, in_chans=1, num_classes=7)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert n_params(model) == n_params(build_model("resnet20", in_chans=1, num_classes=7))


def test_antialiasing_blurs_strided_convs_and_shortcuts():
    model = build_model("resnet20", antialias="tri3")
    block = model.stages[1][0]
    assert block.conv1.stride == (1, 1)
    assert type(block.conv2[0]).__name__ == "BlurPool2d" and block.conv2[0].filt_size == 3
    assert type(block.shortcut[0]).__name__ == "BlurPool2d" and block.shortcut[1].stride == (1, 1)


def test_imagenet_resnet50_b1_replaces_only_the_middle_3x3_of_stage_one():
    names = pushpull_names(build_model("resnet50", placement="b1", num_classes=5))
    assert names == ["conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"]


def test_profile_counts_flops_of_the_pushpull_layers():
    plain = profile_model("resnet20")
    b1 = profile_model("resnet20", placement="b1")
    assert 80e6 < plain.flops < 84e6  # ResNet-20: ~41 M multiply-adds per 32x32 image
    assert b1.params == plain.params and b1.flops > plain.flops
    assert b1.pushpull_layers == ["stem.0"] + STAGE1


@pytest.mark.parametrize("arch, message", [
    ("resnet21", "CIFAR ResNet depth must be 6n\\+2"),
    ("vgg16", "unknown architecture 'vgg16'; allowed: resnet20"),
    ("timm:not_a_model", "unknown timm model 'not_a_model'"),
])
@pytest.mark.bad_input
def test_unknown_architectures_are_rejected(arch, message):
    with pytest.raises(ValueError, match=message):
        build_model(arch)


@pytest.mark.parametrize("design, message", [
    (dict(placement="b3"), "unknown placement 'b3'; allowed: none, pp, b1, b2, all"),
    (dict(antialias="box"), "unknown antialias 'box'; allowed: none, rect2, tri3, bin5, 1, 2"),
    (dict(placement="pp", scale=0.9), "scale"),
    (dict(depth=2), "unknown design key 'depth'"),
])
@pytest.mark.bad_input
def test_bad_designs_are_rejected(design, message):
    with pytest.raises(ValueError, match=message):
        build_model("resnet20", **design)


def test_densenet_bc_is_the_seed_codes():
    """densenet/densenetcifar.py of the authors' repository: a 24-channel stem for every growth
    rate, conv weights normal with std sqrt(2 / (out_channels * k * k)), zero classifier bias."""
    model = build_model("densenet-bc-100-24")
    assert sum(p.numel() for p in model.parameters()) == 2_936_650  # the authors' DenseNet-BC-100-24
    assert model.stem.out_channels == 24 and build_model("densenet-bc-40-12").stem.out_channels == 24
    big = torch.nn.Conv2d(1, 1, 1)  # a conv with many weights to measure the std on
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and module.weight.numel() > big.weight.numel():
            big = module
    fan_out = big.out_channels * big.kernel_size[0] * big.kernel_size[1]
    assert big.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    assert torch.count_nonzero(model.fc.bias) == 0


def test_the_papers_lpf_resnets_blur_the_strided_blocks_input():
    """resnet/resnetcifar.py of the authors' repository: a strided BasicBlock's conv1 is
    Sequential(Downsample(in_channels), conv3x3 at stride 1); the shortcut is Downsample(in_channels),
    a 1x1 conv at stride 1 and BN; conv2 stays a plain 3x3. Zhang's placement blurs after conv1."""
    from ppsearch.layers import BlurPool2d

    seed = build_model("resnet20", antialias="tri3", antialias_position="block_input")
    block = seed.stages[1][0]
    blur, conv = block.conv1
    assert isinstance(blur, BlurPool2d) and (blur.channels, blur.filt_size, blur.stride) == (16, 3, 2)
    assert (conv.in_channels, conv.out_channels, conv.stride) == (16, 32, (1, 1))
    assert isinstance(block.conv2, torch.nn.Conv2d) and block.conv2.stride == (1, 1)
    shortcut_blur, shortcut_conv, _ = block.shortcut
    assert shortcut_blur.channels == 16 and shortcut_conv.kernel_size == (1, 1) and shortcut_conv.stride == (1, 1)
    zhang = build_model("resnet20", antialias="tri3", antialias_position="after_conv1")
    assert zhang.stages[1][0].conv1.stride == (1, 1) and isinstance(zhang.stages[1][0].conv2[0], BlurPool2d)
    assert zhang.stages[1][0].conv2[0].channels == 32
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(seed) == count(zhang) == count(build_model("resnet20"))
    assert seed(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    b1 = build_model("resnet20", placement="b1", antialias="tri3", antialias_position="block_input")
    assert isinstance(b1.stages[0][0].conv1, PushPull2d)


def test_timm_resnets_take_zhangs_placement_only():
    with pytest.raises(ValueError, match="timm's ResNets place the blur after conv1"):
        build_model("timm:resnet18", antialias="tri3", antialias_position="block_input")


def _fails(capsys, args: list, message: str) -> str:
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    return err


@pytest.mark.parametrize("flag, value", [("--in-chans", 99_999_999_999), ("--num-classes", 99_999_999_999),
                                         ("--in-chans", 10**30)])  # beyond torch's 64-bit sizes too
@pytest.mark.bad_input
def test_a_model_too_big_for_memory_is_refused_with_its_estimate(capsys, flag, value):
    # the estimate is exact: the plain model at a small size plus what each channel or class adds
    in_chans, num_classes = (value, 10) if flag == "--in-chans" else (3, value)
    small = n_params(build_model("resnet20", in_chans=1, num_classes=2))
    per_channel = n_params(build_model("resnet20", in_chans=2, num_classes=2)) - small
    per_class = n_params(build_model("resnet20", in_chans=1, num_classes=3)) - small
    params = small + (in_chans - 1) * per_channel + (num_classes - 2) * per_class
    err = _fails(capsys, ["models", "--arch", "resnet20", flag, value],
                 f"resnet20 with in_chans={in_chans} and num_classes={num_classes} has about {params:,} parameters (")
    assert "GiB), more than this machine's" in err


@pytest.mark.parametrize("sizes, message", [
    (dict(num_classes=1), "num_classes must be >= 2 (a classifier tells classes apart), got 1"),
    (dict(num_classes=0), "num_classes must be >= 2 (a classifier tells classes apart), got 0"),
    (dict(in_chans=0), "in_chans must be >= 1, got 0"),
])
@pytest.mark.bad_input
def test_sizes_that_build_no_classifier_are_refused(sizes, message):
    with pytest.raises(UserError, match=re.escape(message)):
        build_model("resnet20", **sizes)


@pytest.mark.bad_input
def test_models_refuses_one_class_and_an_image_size_the_model_does_not_take(capsys):
    _fails(capsys, ["models", "--arch", "resnet20", "--num-classes", "1"], "argument --num-classes: must be an integer >= 2, got '1'")
    _fails(capsys, ["models", "--arch", "timm:vit_tiny_patch16_224", "--image-size", "32"],
           "timm:vit_tiny_patch16_224 does not run on 3-channel 32x32 images: AssertionError: Input height (32)")


def test_surgery_traces_a_vit_at_the_size_it_is_built_for():
    model = build_model("timm:vit_tiny_patch16_224", placement="pp")  # was traced at 64: timm's size assertion
    assert pushpull_names(model) == ["patch_embed.proj"]
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


@pytest.mark.bad_input
def test_train_refuses_a_model_that_does_not_run_on_the_data_before_writing(capsys, tmp_path):
    out = tmp_path / "run"
    _fails(capsys, ["train", "--config", "arch=timm:vit_tiny_patch16_224", "--dataset", "fashion-mnist",
                    "--budget", "smoke", "--quiet", "--out", out],
           "timm:vit_tiny_patch16_224 does not run on 1-channel 32x32 images: AssertionError: Input height (32)")
    assert not out.exists()


def test_latency_is_measured_once_per_configuration_and_reused_from_its_cache(tmp_path):
    from ppsearch.models.latency import LatencySetup, cached_latency

    identity = {"arch": "resnet8", "design": {"placement": "pp"}, "num_classes": 10}
    model = build_model("resnet8", in_chans=1, placement="pp")
    first = cached_latency(model, identity, in_chans=1, image_size=28, setup=LatencySetup(2, "cpu"), cache=tmp_path)
    assert first.median_ms > 0 and first.spread_ms >= 0 and (first.batch, first.device) == (2, "cpu")
    assert len(list(tmp_path.glob("*.json"))) == 1
    again = cached_latency(build_model("resnet8", in_chans=1), identity, in_chans=1, image_size=28,
                           setup=LatencySetup(2, "cpu"), cache=tmp_path)
    assert again == first  # read back, not measured again (a plain model would be faster)
    cached_latency(model, identity, in_chans=1, image_size=28, setup=LatencySetup(4, "cpu"), cache=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2  # another batch is another measurement


def test_models_prints_the_measured_latency_beside_the_plain_models(capsys):
    from ppsearch.cli import main

    assert main(["models", "--arch", "resnet8", "--placement", "pp", "--latency", "--latency-batch", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"latency +[\d.]+ ms \(interquartile range [\d.]+ ms\) per batch of 2 on cpu, \d+ thread", out)
    assert re.search(r"[\d.]+x the plain model's [\d.]+ ms", out)


def test_flops_are_counted_on_the_device_the_model_is_on():
    """A trial times its latency first, which moves the model to the trial's device (a GPU); the
    FLOP count after it must run there (on a GPU it crashed every trial). The meta device stands in
    for a second device on a machine without one."""
    from ppsearch.models.profile import count_flops

    model = build_model("resnet8", in_chans=1, placement="pp")
    on_cpu = count_flops(model, 28, 1)
    assert count_flops(model.to("meta"), 28, 1) == on_cpu > 0
