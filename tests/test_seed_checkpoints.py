"""Checkpoints of the seed paper's code load into ppsearch's models and give the same outputs.

The reference models here are written from the description of the authors' repository
(nicstrisc/Push-Pull-CNN-layer: pushpull/PPmodule2d.py, resnet/resnetcifar.py,
densenet/densenetcifar.py, utils/downsample.py): their module names, their push-pull forward pass
and their blur. The tests save them as the seed code's training script does
(``{"epoch", "state_dict", "best_prec1"}``, keys with ``module.`` from nn.DataParallel) and load them
with ``ppsearch.load_model``. Nothing is downloaded.
"""
import math
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ppsearch
from ppsearch.errors import UserError


class SeedPushPull(nn.Module):
    """PPmodule2d: the kernel in a child ``push``; pull = -bilinear upsample to floor(3 h) (odd), the
    same stride; trainable alpha of shape (1, C, 1, 1), rectified."""

    def __init__(self, cin, cout, stride=1, trainable_alpha=False):
        super().__init__()
        self.push = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.trainable_alpha = trainable_alpha
        self.alpha = nn.Parameter(torch.rand(1, cout, 1, 1)) if trainable_alpha else 1.0

    def forward(self, x):
        pull_weight = F.interpolate(self.push.weight, size=(7, 7), mode="bilinear", align_corners=True)
        push = F.relu(self.push(x))
        pull = F.relu(F.conv2d(x, -pull_weight, None, self.push.stride, 3))
        alpha = F.relu(self.alpha) if self.trainable_alpha else self.alpha
        return push - alpha * pull


class SeedDownsample(nn.Module):
    """Zhang's Downsample: a persistent binomial ``filt`` buffer, reflect padding, stride 2."""

    def __init__(self, channels, size=3):
        super().__init__()
        taps = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float32)
        filt = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))
        self.pad = ((size - 1) // 2, size // 2) * 2

    def forward(self, x):
        return F.conv2d(F.pad(x, self.pad, mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def seed_conv(cin, cout, stride, push_pull, trainable_alpha):
    if push_pull:
        return SeedPushPull(cin, cout, stride, trainable_alpha)
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class SeedBlock(nn.Module):
    """BasicBlock (conv1/conv2) or PushPullBlock (pp1/pp2); with a blur, a strided block's first conv
    is Sequential(Downsample, conv at stride 1) and its shortcut Sequential(Downsample, 1x1, BN)."""

    def __init__(self, cin, cout, stride, push_pull, trainable_alpha, lpf):
        super().__init__()
        first, second = ("pp1", "pp2") if push_pull else ("conv1", "conv2")
        self.names = first, second
        if stride > 1 and lpf:
            conv = nn.Sequential(SeedDownsample(cin, lpf), seed_conv(cin, cout, 1, push_pull, trainable_alpha))
        else:
            conv = seed_conv(cin, cout, stride, push_pull, trainable_alpha)
        self.add_module(first, conv)
        self.bn1 = nn.BatchNorm2d(cout)
        self.add_module(second, seed_conv(cout, cout, 1, push_pull, trainable_alpha))
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            parts = ([SeedDownsample(cin, lpf), nn.Conv2d(cin, cout, 1, bias=False)] if lpf
                     else [nn.Conv2d(cin, cout, 1, stride, bias=False)])
            self.downsample = nn.Sequential(*parts, nn.BatchNorm2d(cout))

    def forward(self, x):
        first, second = (getattr(self, n) for n in self.names)
        out = self.bn2(second(F.relu(self.bn1(first(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class SeedResNetCifar(nn.Module):
    """ResNetCifar(use_pp1, pp_block1, train_alpha, size_lpf): conv1, bn1, layer1..3, fc."""

    def __init__(self, n=3, use_pp1=False, pp_block1=False, train_alpha=False, size_lpf=None):
        super().__init__()
        self.conv1 = seed_conv(3, 16, 1, use_pp1, train_alpha)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, width in enumerate((16, 32, 64)):
            blocks = [SeedBlock(cin if b == 0 else width, width, 2 if i and b == 0 else 1, pp_block1 and i == 0,
                                train_alpha, size_lpf) for b in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = width
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


class SeedDenseLayer(nn.Module):
    def __init__(self, cin, growth, push_pull):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = seed_conv(4 * growth, growth, 1, push_pull, False)

    def forward(self, x):
        return torch.cat([x, self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))], 1)


class SeedDenseNetCifar(nn.Module):
    """DenseNetCifar(small_inputs=True): features.{conv0, denseblockN.denselayerI, transitionN,
    norm_final}, classifier; a 24-channel stem; compression 0.5."""

    def __init__(self, depth, growth, use_pp1=False, pp_block1=False):
        super().__init__()
        n, chs = (depth - 4) // 6, 24
        parts = OrderedDict(conv0=seed_conv(3, chs, 1, use_pp1, False))
        for b in range(3):
            block = nn.Sequential(OrderedDict((f"denselayer{i + 1}", SeedDenseLayer(chs + i * growth, growth,
                                                                                     pp_block1 and b == 0))
                                              for i in range(n)))
            parts[f"denseblock{b + 1}"] = block
            chs += n * growth
            if b < 2:
                parts[f"transition{b + 1}"] = nn.Sequential(OrderedDict(
                    norm=nn.BatchNorm2d(chs), relu=nn.ReLU(), conv=nn.Conv2d(chs, chs // 2, 1, bias=False),
                    pool=nn.AvgPool2d(2)))
                chs //= 2
        parts["norm_final"] = nn.BatchNorm2d(chs)
        self.features = nn.Sequential(parts)
        self.classifier = nn.Linear(chs, 10)

    def forward(self, x):
        return self.classifier(F.relu(self.features(x)).mean((2, 3)))


def trained_looking(model):
    """Random batch-norm statistics and alphas, so that a misplaced tensor changes the outputs."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.normal_(0, 0.1, generator=generator)
    return model.eval()


def save_as_the_seed_code(model, path, data_parallel=True):
    prefix = "module." if data_parallel else ""
    state = {prefix + key: value for key, value in model.state_dict().items()}
    torch.save({"epoch": 185, "state_dict": state, "best_prec1": 91.4}, path)
    return path


IMAGES = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("seed_kwargs, design", [
    ({}, {}),
    ({"use_pp1": True}, {"placement": "pp"}),
    ({"use_pp1": True, "pp_block1": True, "train_alpha": True}, {"placement": "b1", "trainable_alpha": True}),
    ({"size_lpf": 3}, {"antialias": 3}),
    ({"use_pp1": True, "pp_block1": True, "size_lpf": 5}, {"placement": "b1", "antialias": 5}),
])
def test_seed_code_resnet_checkpoints_give_the_seed_codes_outputs(tmp_path, seed_kwargs, design):
    reference = trained_looking(SeedResNetCifar(**seed_kwargs))
    path = save_as_the_seed_code(reference, tmp_path / "model_best.pth.tar")
    model = ppsearch.load_model(path, arch="resnet20", **design)
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(IMAGES), reference(IMAGES), rtol=1e-4, atol=1e-5)
    spec = model.ppsearch_spec
    assert spec.dataset == "cifar10" and spec.mean[0] == pytest.approx(125.3 / 255)  # the seed code's normalisation
    assert spec.design["antialias_position"] == "block_input"


@pytest.mark.parametrize("seed_kwargs, design", [({}, {}), ({"use_pp1": True, "pp_block1": True}, {"placement": "b1"})])
def test_seed_code_densenet_checkpoints_give_the_seed_codes_outputs(tmp_path, seed_kwargs, design):
    reference = trained_looking(SeedDenseNetCifar(16, 4, **seed_kwargs))
    path = save_as_the_seed_code(reference, tmp_path / "checkpoint.pth", data_parallel=False)
    model = ppsearch.load_model(path, arch="densenet-bc-16-4", **design)
    with torch.no_grad():
        torch.testing.assert_close(model(IMAGES), reference(IMAGES), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def pp_checkpoint(tmp_path_factory):
    return save_as_the_seed_code(trained_looking(SeedResNetCifar(use_pp1=True)),
                                 tmp_path_factory.mktemp("seed") / "model_best.pth.tar")


@pytest.mark.parametrize("arch, design, message", [
    ("resnet20", {}, r"has a push-pull layer at 'stem.0', where this placement builds a plain convolution"),
    ("resnet20", {"placement": "b1"}, r"has a plain convolution at 'stages.0.0.conv1', where this placement builds "
                                      r"a push-pull layer"),
    ("resnet32", {"placement": "pp"}, r"lacks tensor 'stages.0.3.conv1.weight' \(16, 16, 3, 3\)"),
    ("resnet20", {"placement": "pp", "trainable_alpha": True}, r"lacks tensor 'stem.0.alpha' \(16,\)"),
    ("resnet20", {"placement": "pp", "antialias": 3}, r"lacks tensor 'stages.1.0.conv1.1.weight'"),
    ("densenet-bc-40-12", {"placement": "pp"}, r"lacks tensor 'stem.weight' \(24, 3, 3, 3\) that DenseNetBC needs"),
    ("wrn-16-4", {}, "the seed code has checkpoints of CIFAR ResNets and DenseNet-BC, not wrn-16-4"),
    ("resnet21", {}, "CIFAR ResNet depth must be 6n\\+2"),
])
@pytest.mark.bad_input
def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_tensor(pp_checkpoint, arch, design, message):
    with pytest.raises(UserError, match=message):
        ppsearch.load_model(pp_checkpoint, arch=arch, **design)


@pytest.mark.bad_input
def test_a_tensor_of_another_shape_is_named_as_the_file_names_it(tmp_path):
    path = save_as_the_seed_code(SeedDenseNetCifar(16, 4), tmp_path / "k4.pth", data_parallel=False)
    with pytest.raises(UserError, match=r"tensor 'features.denseblock1.denselayer1.conv1.weight' \(ppsearch: "
                                        r"'stages.0.0.bottleneck.2.weight'\) has shape \(16, 24, 1, 1\), DenseNetBC "
                                        r"expects \(32, 24, 1, 1\)"):
        ppsearch.load_model(path, arch="densenet-bc-16-8")


@pytest.mark.bad_input
def test_a_blur_filter_other_than_the_designs_is_refused(tmp_path):
    path = save_as_the_seed_code(SeedResNetCifar(size_lpf=5), tmp_path / "lpf5.pth.tar")
    with pytest.raises(UserError, match=r"blur filter 'module.layer2.0.conv1.0.filt' of shape \(16, 1, 5, 5\) is not "
                                        r"the 3-tap binomial filter \(16, 1, 3, 3\)"):
        ppsearch.load_model(path, arch="resnet20", antialias=3)
    with pytest.raises(UserError, match="holds blur filter 'module.layer2.0.conv1.0.filt' where the model has no blur"):
        ppsearch.load_model(path, arch="resnet20")
    with pytest.raises(UserError, match="the seed code blurs the strided block's input"):
        ppsearch.load_model(path, arch="resnet20", antialias=5, antialias_position="after_conv1")


class Gadget:  # a pickled object that is not a tensor: torch.load(weights_only=True) refuses it
    pass


def test_only_tensors_are_ever_unpickled(tmp_path):
    path = tmp_path / "code.pth.tar"
    torch.save({"state_dict": SeedResNetCifar().state_dict(), "extra": Gadget()}, path)
    with pytest.raises(UserError, match=r"holds a Python object \(test_seed_checkpoints.Gadget\) besides tensors"):
        ppsearch.load_model(path, arch="resnet20")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(UserError, match="is not a torch checkpoint"):
        ppsearch.load_model(tmp_path / "text.pth", arch="resnet20")
    with pytest.raises(UserError, match="name its architecture"):
        ppsearch.load_model(path)


def test_a_ppsearch_model_file_names_its_own_design(tmp_path):
    from ppsearch.models.model_file import ModelSpec, save_model

    spec = ModelSpec("resnet20", {"placement": "pp"}, 3, 10, "cifar10", (0.5,) * 3, (0.25,) * 3)
    path = save_model(tmp_path / "m.safetensors", spec.build(), spec)
    assert ppsearch.load_model(path).ppsearch_spec == spec
    with pytest.raises(UserError, match="its architecture and design are stored in it"):
        ppsearch.load_model(path, arch="resnet20", placement="pp")


def test_eval_takes_a_seed_checkpoint_with_its_architecture_and_design(pp_checkpoint, tmp_path):
    """`ppsearch eval --checkpoint PATH --arch resnet20 --placement pp` (a misfit is one line, exit 2)."""
    command = [sys.executable, "-m", "ppsearch", "eval", "--checkpoint", str(pp_checkpoint), "--arch", "resnet20",
               "--out", str(tmp_path / "eval")]
    wrong = subprocess.run(command, capture_output=True, text=True)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert "has a push-pull layer at 'stem.0'" in wrong.stderr and not (tmp_path / "eval").exists()
    right = subprocess.run(command[:-2] + ["--placement", "pp", "--dataset", "fashion-mnist", "--subset", "32",
                                           "--c-source", "none", "--p-source", "none", "--quiet",
                                           "--out", str(tmp_path / "eval")], capture_output=True, text=True)
    assert right.returncode == 0, right.stderr
    assert "clean error" in right.stdout and (tmp_path / "eval").is_dir()
