"""PushPull2d against its equations, computed independently with plain F.conv2d."""
import copy
import re
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ppsearch import PushPull2d
from ppsearch.layers import PUSH_PULL_VARIANTS, UpsamplePushPull2d, create_push_pull, default_pull_kernel_size

F64 = dict(dtype=torch.float64)


@pytest.mark.parametrize("size, scale, expected", [(3, 2, 7), (5, 2, 11), (7, 2, 15), (3, 1.5, 5), (3, 1, 3), (4, 2, 8)])
def test_pull_kernel_size_follows_the_papers_formula(size, scale, expected):
    assert default_pull_kernel_size(size, scale) == expected
    assert PushPull2d(2, 2, size, scale=scale).pull_kernel_size == expected


def test_pull_kernel_of_a_linear_kernel_is_its_exact_bilinear_upsampling():
    layer = PushPull2d(1, 1, 3, bias=False, **F64)
    rows, cols = torch.meshgrid(torch.arange(3.0, **F64), torch.arange(3.0, **F64), indexing="ij")
    with torch.no_grad():
        layer.weight.copy_((rows + 10 * cols).view(1, 1, 3, 3))
    # bilinear interpolation reproduces a linear function: output pixel i sits at input i/3
    r7, c7 = torch.meshgrid(torch.arange(7.0, **F64), torch.arange(7.0, **F64), indexing="ij")
    torch.testing.assert_close(layer.pull_weight()[0, 0], -(r7 / 3 + 10 * c7 / 3))


def upsample_reference(x, layer, alpha):
    pull = -F.interpolate(layer.weight, size=(layer.pull_kernel_size,) * 2, mode="bilinear", align_corners=True)
    bias = layer.bias
    push = F.conv2d(x, layer.weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    pad = layer.padding[0] + layer.dilation[0] * (layer.pull_kernel_size - layer.kernel_size[0]) // 2
    pull = F.conv2d(x, pull, None if bias is None else -bias, layer.stride, pad, layer.dilation, layer.groups)
    return F.relu(push) - alpha * F.relu(pull)


@pytest.mark.parametrize("impl", ["direct", "separable"])
@pytest.mark.parametrize("cin, cout, k, stride, pad, dil, groups, scale, bias", [
    (3, 8, 3, 1, 1, 1, 1, 2.0, False),
    (4, 6, 3, 2, 1, 1, 2, 2.0, True),
    (4, 4, 5, 1, 2, 2, 1, 1.5, False),
    (6, 6, 3, 1, 1, 1, 6, 3.0, True),
    (4, 8, 4, 4, 0, 1, 1, 2.0, False),
])
def test_upsample_variant_matches_its_equation(impl, cin, cout, k, stride, pad, dil, groups, scale, bias):
    torch.manual_seed(0)
    layer = PushPull2d(cin, cout, k, stride, pad, dil, groups, bias, scale=scale, alpha=0.7, pull_impl=impl, **F64)
    x = torch.randn(2, cin, 13, 13, **F64)
    y = layer(x)
    assert y.shape == nn.Conv2d(cin, cout, k, stride, pad, dil, groups)(x.float()).shape
    torch.testing.assert_close(y, upsample_reference(x, layer, 0.7))


@pytest.mark.parametrize("avg", [0, 3, 5])
def test_minmax_avg_variant_matches_its_equation(avg):
    torch.manual_seed(0)
    layer = PushPull2d(3, 5, 3, 1, 1, variant="minmax_avg", avg_kernel_size=avg, **F64)
    k = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 0.0, 1.0]], **F64)
    with torch.no_grad():
        layer.weight.copy_(k.expand(5, 3, 3, 3) * torch.arange(1.0, 6.0, **F64).view(5, 1, 1, 1))
    # per filter f: max = 3f, min = -2f, so pull = -k*f + f
    pull_kernel = (-k + 1).expand(5, 3, 3, 3) * torch.arange(1.0, 6.0, **F64).view(5, 1, 1, 1)
    torch.testing.assert_close(layer.pull_weight(), pull_kernel)
    x = torch.randn(2, 3, 9, 9, **F64)
    pull = F.conv2d(x, pull_kernel, padding=1)
    if avg:
        pull = F.avg_pool2d(pull, avg, 1, avg // 2, count_include_pad=False)
    expected = F.relu(F.conv2d(x, layer.weight, padding=1)) - F.relu(pull) + layer.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), expected)
    assert layer.bias.min() >= -1 and layer.bias.max() <= 1


def test_minmax_avg_with_groups_matches_its_equation():
    torch.manual_seed(1)
    layer = PushPull2d(4, 6, 3, 2, 1, groups=2, bias=False, variant="minmax_avg", **F64)
    x = torch.randn(2, 4, 10, 10, **F64)
    expected = F.relu(F.conv2d(x, layer.weight, None, 2, 1, groups=2)) \
        - F.relu(F.conv2d(x, layer.pull_weight(), None, 2, 1, groups=2))
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("design", [
    dict(pull_impl="separable", trainable_alpha=True),
    dict(pull_impl="direct", bias=True),
    dict(variant="minmax_avg", avg_kernel_size=3, trainable_alpha=True),
])
def test_gradients_flow_into_push_weights_and_alpha(design):
    torch.manual_seed(0)
    bias = design.pop("bias", False)
    layer = PushPull2d(2, 3, 3, 1, 1, bias=bias, **design, **F64)
    x = torch.randn(1, 2, 6, 6, **F64, requires_grad=True)
    params = [x] + list(layer.parameters())

    def fn(x, *weights):
        return torch.func.functional_call(layer, dict(zip([n for n, _ in layer.named_parameters()], weights)), (x,))

    assert torch.autograd.gradcheck(fn, tuple(params))


def test_trainable_alpha_is_initialised_as_each_paper_does():
    torch.manual_seed(0)
    up = PushPull2d(16, 32, 3, trainable_alpha=True)
    r = 1 / (16 * 32) ** 0.5
    assert up.alpha.shape == (32,) and up.alpha.min() >= 0.5 - r and up.alpha.max() <= 0.5 + r
    mm = PushPull2d(16, 32, 3, variant="minmax_avg", trainable_alpha=True)
    assert mm.alpha.min() >= 0 and mm.alpha.max() <= 1 and mm.alpha.std() > 0.1


def test_upsample_alpha_is_rectified_but_minmax_alpha_is_not():
    x = torch.randn(1, 2, 5, 5, **F64)
    outputs = {}
    for variant in ("upsample", "minmax_avg"):
        layer = PushPull2d(2, 2, 3, 1, 1, bias=False, variant=variant, trainable_alpha=True, **F64)
        with torch.no_grad():
            layer.alpha.fill_(-1.0)
        outputs[variant] = (layer(x), F.relu(F.conv2d(x, layer.weight, padding=1)))
    up, up_push = outputs["upsample"]
    mm, mm_push = outputs["minmax_avg"]
    assert torch.equal(up, up_push)  # relu(-1) = 0: no inhibition
    assert (mm >= mm_push).all() and (mm > mm_push).any()  # -(-1) * relu(pull) adds


def test_eval_reuses_the_pull_kernel_until_the_weights_change():
    layer = PushPull2d(3, 4, 3, 1, 1, pull_impl="direct").eval()
    calls = []
    derive = layer._derive
    layer._derive = lambda: calls.append(1) or derive()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        first = layer(x)
        assert torch.equal(layer(x), first) and len(calls) == 1
        layer.weight.mul_(2)  # what an optimizer step or load_state_dict does
        changed = layer(x)
    assert len(calls) == 2 and not torch.equal(changed, first)
    torch.testing.assert_close(changed, upsample_reference(x, layer, 1.0))


def test_from_conv_keeps_the_weights_as_push_kernels():
    conv = nn.Conv2d(3, 8, 3, 2, 1, bias=True)
    layer = PushPull2d.from_conv(conv, scale=2.0)
    assert torch.equal(layer.weight, conv.weight) and torch.equal(layer.bias, conv.bias)
    assert layer.stride == (2, 2) and layer.padding == (1, 1)
    assert set(layer.state_dict()) == set(conv.state_dict())


def test_from_conv_leaves_out_a_bias_that_means_something_else():
    """minmax_avg's bias is added after the subtraction: a conv's bias is not its bias."""
    conv = nn.Conv2d(3, 8, 3, 1, 1, bias=True)
    with torch.no_grad():
        conv.bias.fill_(5.0)
    layer = PushPull2d.from_conv(conv, variant="minmax_avg", avg_kernel_size=3)
    assert torch.equal(layer.weight, conv.weight) and layer.bias.abs().max() <= 1


def test_exports_with_torch_export():
    model = nn.Sequential(PushPull2d(3, 8, 3, 1, 1), nn.ReLU(), PushPull2d(8, 8, 3, 2, 1, variant="minmax_avg",
                                                                             avg_kernel_size=3)).eval()
    x = torch.randn(2, 3, 16, 16)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize("args, kwargs, message", [
    ((3, 4, 3), dict(scale=0.5), "scale must be a number >= 1, got 0.5"),
    ((3, 4, 3), dict(scale=True), "scale must be a number >= 1, got True"),
    ((3, 4, 3), dict(pull_kernel_size=6), "pull_kernel_size must be None or an odd integer >= kernel_size 3, got 6"),
    ((3, 4, 3), dict(pull_kernel_size=1), "pull_kernel_size must be None or an odd integer >= kernel_size 3, got 1"),
    ((3, 4, 4), dict(pull_kernel_size=7), "pull_kernel_size must be None or an even integer >= kernel_size 4, got 7"),
    ((3, 4, 3), dict(variant="gabor"), "unknown variant 'gabor'; allowed: upsample, minmax_avg"),
    ((3, 4, 3), dict(variant="minmax_avg", avg_kernel_size=4), "avg_kernel_size must be 0 or an odd integer >= 3, got 4"),
    ((3, 4, 3), dict(avg_kernel_size=3),
     "avg_kernel_size applies to variant='minmax_avg' only, got avg_kernel_size=3 with variant='upsample'"),
    ((3, 4, 3), dict(variant="minmax_avg", pull_kernel_size=5),
     "pull_kernel_size applies to variant='upsample' only, got pull_kernel_size=5 with variant='minmax_avg'"),
    ((3, 4, 3), dict(variant="minmax_avg", pull_impl="separable"),
     "pull_impl applies to variant='upsample' only, got pull_impl='separable' with variant='minmax_avg'"),
    ((3, 4, 3), dict(pull_impl="fft"), "pull_impl must be one of direct, separable, got 'fft'"),
    ((3, 4, 3), dict(alpha=float("nan")), "alpha must be a finite number >= 0, got nan"),
    ((3, 4, 3), dict(alpha=-1), "alpha must be a finite number >= 0, got -1"),
    ((3, 4, 3), dict(trainable_alpha="yes"), "trainable_alpha must be True or False, got 'yes'"),
    ((3, 4, (3, 5)), dict(), "PushPull2d needs a square kernel_size, got (3, 5)"),
    ((3, 4, 4), dict(padding="same"), "padding='same' needs an odd kernel_size, got 4"),
    ((3, 4, 3), dict(padding_mode="reflect"), "PushPull2d supports padding_mode='zeros' only, got 'reflect'"),
])
@pytest.mark.bad_input
def test_bad_arguments_name_the_argument_the_value_and_what_is_allowed(args, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        PushPull2d(*args, **kwargs)


@pytest.mark.bad_input
def test_create_push_pull_maps_variant_names_to_classes_and_refuses_others():
    from ppsearch.config import VARIANTS

    assert tuple(PUSH_PULL_VARIANTS) == VARIANTS  # the layer's registry is the search schema's list
    for name, layer_class in PUSH_PULL_VARIANTS.items():
        layer = create_push_pull(name, 3, 4, 3, padding=1)
        assert type(layer) is layer_class and type(PushPull2d(3, 4, 3, variant=name)) is layer_class
        assert isinstance(layer, PushPull2d) and isinstance(layer, nn.Conv2d) and layer.variant == name
    assert type(PushPull2d(3, 4, 3)) is UpsamplePushPull2d  # the default variant
    with pytest.raises(ValueError, match=r"^unknown variant 'dog'; allowed: upsample, minmax_avg$"):
        create_push_pull("dog", 3, 4, 3)


def test_another_variants_keywords_at_their_defaults_change_nothing():
    """A design row sets every variant's keywords: those the variant does not use leave it as it is."""
    for variant, unused in [("upsample", dict(avg_kernel_size=0)),
                            ("minmax_avg", dict(scale=3.0, pull_kernel_size=None, pull_impl="direct"))]:
        torch.manual_seed(0)
        bare = create_push_pull(variant, 3, 4, 3, padding=1, trainable_alpha=True)
        torch.manual_seed(0)
        layer = create_push_pull(variant, 3, 4, 3, padding=1, trainable_alpha=True, **unused)
        assert repr(layer) == repr(bare)
        assert all(torch.equal(a, b) for a, b in zip(layer.state_dict().values(), bare.state_dict().values()))


def test_the_forward_pass_uses_no_private_conv2d_method(monkeypatch):
    def private(*_):
        raise AssertionError("nn.Conv2d._conv_forward called")

    monkeypatch.setattr(nn.Conv2d, "_conv_forward", private)
    x = torch.randn(1, 3, 8, 8)
    for design in [dict(), dict(pull_impl="separable"), dict(variant="minmax_avg", avg_kernel_size=3)]:
        assert PushPull2d(3, 4, 3, padding=1, **design)(x).shape == (1, 4, 8, 8)


def test_a_layer_deep_copies_and_pickles_as_its_variant(tmp_path):
    x = torch.randn(1, 3, 8, 8)
    for layer in [PushPull2d(3, 4, 3, padding=1, trainable_alpha=True),
                  PushPull2d(3, 4, 3, padding=1, variant="minmax_avg", avg_kernel_size=3)]:
        torch.save(layer, tmp_path / "layer.pt")
        for copy_ in (copy.deepcopy(layer), torch.load(tmp_path / "layer.pt", weights_only=False)):
            assert type(copy_) is type(layer) and torch.equal(copy_(x), layer(x))


def test_the_layers_import_nothing_from_the_search_schema():
    """The layers are reusable without ppsearch's configuration schema or search."""
    code = ("import sys, ppsearch.layers; "
            "print([m for m in sys.modules if m == 'ppsearch.config' or m.startswith('ppsearch.search')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
