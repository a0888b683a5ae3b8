"""A ppsearch model in the form a deployment runtime reads: ONNX.

The model is exported in eval mode with torch's ONNX exporter (``dynamo=True``), any batch size, at
its dataset's image size. A push-pull layer's pull kernel depends on its push weights only: the
exporter folds its upsampling into a constant, and the negation left after it (the exporter's
folding stops at small tensors) is folded here, so the file holds the derived kernels, computed once.
The file's metadata names the normalisation its input expects (the model file's mean and std) and
the design, so that whoever serves it feeds it what it was trained on.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ..data.datasets import native_image_size
from ..errors import UserError
from ..files import atomic_path
from .model_file import ModelSpec

if TYPE_CHECKING:
    import onnx

INSTALL_HINT = "pip install 'ppsearch[export]'"
EXPORTER_PACKAGES = ("onnx", "onnxscript")  # what torch's ONNX exporter imports


def export_onnx(model: nn.Module, spec: ModelSpec, out: str | Path) -> Path:
    """Write ``model`` (built from ``spec``) to ``out`` as ONNX; returns the path."""
    size = native_image_size(spec.dataset)
    with atomic_path(out) as tmp:
        proto = onnx_model(model, in_chans=spec.in_chans, image_size=size)
        for key, value in {"ppsearch_arch": spec.arch, "ppsearch_design": json.dumps(spec.design),
                           "ppsearch_dataset": spec.dataset, "input_mean": json.dumps(list(spec.mean)),
                           "input_std": json.dumps(list(spec.std)),
                           "input_layout": f"float32 (batch, {spec.in_chans}, {size}, {size}), normalised"}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        tmp.write_bytes(proto.SerializeToString())
    return Path(out)


def onnx_model(model: nn.Module, *, in_chans: int, image_size: int) -> onnx.ModelProto:
    """``model`` in eval mode as an ONNX model taking any batch of ``in_chans`` x ``image_size``
    pixels, its pull kernels folded into constants: the one exporter behind both a file that
    :func:`export_onnx` writes and the latency ONNX Runtime measures (``models.latency``), so that
    what is timed is what is served. The model is left in eval mode, where it is."""
    missing = missing_packages(*EXPORTER_PACKAGES)
    if missing:
        raise UserError(f"exporting to ONNX needs {', '.join(missing)}: {INSTALL_HINT}")
    where = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    example = torch.zeros(1, in_chans, image_size, image_size, device=where)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's progress and deprecation chatter
        exported = torch.onnx.export(model.eval(), (example,), dynamo=True, dynamic_shapes=({0: "batch"},),
                                     verbose=False)
    proto = exported.model_proto
    _fold_negated_constants(proto.graph)
    return proto


def missing_packages(*names: str) -> list[str]:
    """Those of the export extra's packages ``names`` (as they are imported) that are not installed:
    checked before anything is exported, so that the user is told what to install, not shown an
    ImportError from inside torch's exporter."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def _fold_negated_constants(graph) -> None:
    """Replace every ``Neg`` of a constant by the negated constant (and drop constants left unused)."""
    from onnx import numpy_helper

    constants = {tensor.name: tensor for tensor in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "Neg" and n.input[0] in constants]:
        graph.initializer.append(numpy_helper.from_array(-numpy_helper.to_array(constants[node.input[0]]),
                                                         node.output[0]))
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
