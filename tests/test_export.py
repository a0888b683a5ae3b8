"""ONNX export: what ONNX Runtime computes from the exported file is what torch computes, for every
layer variant and anti-aliasing filter, on a ppsearch architecture and a timm one."""
import json

import numpy as np
import pytest
import torch

from ppsearch.cli import main
from ppsearch.config import Design
from ppsearch.data.preprocess import normalisation
from ppsearch.models import build_model
from ppsearch.models.export import export_onnx
from ppsearch.models.model_file import ModelSpec, save_model

onnx = pytest.importorskip("onnx", reason="the export extra is not installed: pip install 'ppsearch[export]'")
onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra is not installed")

DESIGNS = {
    "plain": {},
    "pp": {"placement": "pp"},
    "b1": {"placement": "b1"},
    "b1 minmax_avg": {"placement": "b1", "variant": "minmax_avg", "avg_kernel_size": 3},
    "b1 trainable alpha": {"placement": "b1", "trainable_alpha": True, "alpha": 0.7},
    **{f"pp {f}": {"placement": "pp", "antialias": f} for f in ("rect2", "tri3", "bin5")},
}


def _spec(arch: str, design: dict) -> ModelSpec:
    return ModelSpec(arch, Design(**design).to_dict(), 3, 10, "cifar10", *normalisation("cifar10", 3))


def _agree(model: torch.nn.Module, path) -> None:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # another batch than exported
    (served,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.inference_mode():
        expected = model.eval()(images).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_onnx_runtime_computes_what_torch_computes(tmp_path, name):
    torch.manual_seed(0)
    spec = _spec("resnet20", DESIGNS[name])
    model = spec.build()
    with torch.no_grad():  # trained-looking batch norms and alphas, not the initial identity
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    path = export_onnx(model, spec, tmp_path / "model.onnx")
    _agree(model, path)
    graph = onnx.load(str(path)).graph
    constants = {tensor.name for tensor in graph.initializer}
    derived = [n.op_type for n in graph.node if n.op_type in ("Neg", "Resize") and set(n.input) & constants]
    assert not derived  # the pull kernels are constants of the file, derived once, not at every inference


def test_a_timm_model_exports_through_the_command_line_with_its_normalisation(tmp_path, capsys):
    spec = _spec("timm:resnet18", {"placement": "b1", "antialias": "tri3"})
    model = build_model("timm:resnet18", num_classes=10, placement="b1", antialias="tri3")
    saved = save_model(tmp_path / "resnet18.safetensors", model, spec)
    out = tmp_path / "resnet18.onnx"
    assert main(["export", str(saved), "--out", str(out)]) == 0
    assert f"exported to {out} (onnx)" in capsys.readouterr().out
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(metadata["input_mean"]) == list(spec.mean) and metadata["ppsearch_arch"] == "timm:resnet18"
    _agree(model, out)


@pytest.mark.bad_input
@pytest.mark.parametrize("what, message", [
    ("not a model", "is not a readable safetensors file"),
    ("unwritable", "/sys/model.onnx: cannot write in /sys"),
])
def test_export_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, what, message):
    model_file = tmp_path / "model.safetensors"
    if what == "not a model":
        model_file.write_text("placement: pp\n")
        out = tmp_path / "model.onnx"
    else:
        save_model(model_file, build_model("resnet8"), _spec("resnet8", {}))
        out = "/sys/model.onnx"
    assert main(["export", str(model_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "model.onnx").exists()
