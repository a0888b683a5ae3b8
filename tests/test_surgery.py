"""pushpullify on models from other libraries: weights kept, the right layers swapped."""
import pytest
import timm
import torch
import torchvision

from ppsearch import PushPull2d, pushpullify


def convs(model):
    return {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}


@pytest.mark.parametrize("factory, placement, expected", [
    (lambda: torchvision.models.resnet18(num_classes=10), "b1",
     ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2"]),
    (lambda: timm.create_model("resnet50", num_classes=10), "pp", ["conv1"]),
    (lambda: timm.create_model("efficientnet_b0", num_classes=10), "b1", ["conv_stem", "blocks.0.0.conv_dw"]),
    (lambda: timm.create_model("convnext_atto", num_classes=10), "b1",
     ["stem.0", "stages.0.blocks.0.conv_dw", "stages.0.blocks.1.conv_dw"]),
])
def test_surgery_swaps_the_stem_and_first_stages_keeping_weights(factory, placement, expected):
    torch.manual_seed(0)
    model = factory().eval()
    before, x = convs(model), torch.randn(1, 3, 64, 64)
    plain_out = model(x)
    changes = pushpullify(model, {"placement": placement, "scale": 2.0})
    assert [c.name for c in changes] == expected
    modules = dict(model.named_modules())
    for change in changes:
        layer = modules[change.name]
        assert isinstance(layer, PushPull2d) and torch.equal(layer.weight, before[change.name])
    out = model(x)
    assert out.shape == plain_out.shape and not torch.allclose(out, plain_out)


def test_depthwise_convs_keep_their_groups():
    model = timm.create_model("efficientnet_b0", num_classes=10)
    change = pushpullify(model, {"placement": "b1"})[1]
    assert change.groups == change.in_channels == 32 and model.blocks[0][0].conv_dw.groups == 32


def test_pretrained_state_dict_loads_into_the_pushpull_model():
    source = torchvision.models.resnet18(num_classes=10)
    target = torchvision.models.resnet18(num_classes=10)
    pushpullify(target, {"placement": "b2", "variant": "minmax_avg", "avg_kernel_size": 3})
    missing, unexpected = target.load_state_dict(source.state_dict(), strict=False)
    # only the minmax biases (not in a bias-free conv) are new; every pretrained weight lands
    assert unexpected == [] and all(key.endswith(".bias") for key in missing)


@pytest.mark.bad_input
def test_surgery_of_none_changes_nothing_and_antialias_is_refused():
    model = torchvision.models.resnet18()
    assert pushpullify(model, {"placement": "none"}) == []
    with pytest.raises(ValueError, match="cannot add anti-aliasing"):
        pushpullify(model, {"placement": "pp", "antialias": "tri3"})
