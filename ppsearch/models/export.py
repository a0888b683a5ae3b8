"""A ppsearch model in the form a deployment runtime reads: ONNX.

The model is exported in eval mode with torch's ONNX exporter (``dynamo=True``), any batch size, at
its dataset's image size. A push-pull layer's pull kernel depends on its push weights only: the
exporter folds its upsampling into a constant, and the negation left after it (the exporter's
folding stops at small tensors) is folded here, so the file holds the derived kernels, computed once.
The file's metadata names the normalisation its input expects (the model file's mean and std) and
the design, so that whoever serves it feeds it what it was trained on.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from ..data.datasets import native_image_size
from ..errors import UserError
from ..files import atomic_path
from .model_file import ModelSpec

INSTALL_HINT = "pip install 'ppsearch[export]'"


def export_onnx(model: nn.Module, spec: ModelSpec, out: str | Path) -> Path:
    """Write ``model`` (built from ``spec``) to ``out`` as ONNX; returns the path."""
    try:
        import onnx
    except ImportError:
        raise UserError(f"exporting to ONNX needs the onnx packages: {INSTALL_HINT}") from None
    size = native_image_size(spec.dataset)
    example = torch.zeros(1, spec.in_chans, size, size)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's progress and deprecation chatter
        exported = torch.onnx.export(model.eval(), (example,), dynamo=True, dynamic_shapes=({0: "batch"},),
                                     verbose=False)
        proto = exported.model_proto
        _fold_negated_constants(proto.graph)
        for key, value in {"ppsearch_arch": spec.arch, "ppsearch_design": json.dumps(spec.design),
                           "ppsearch_dataset": spec.dataset, "input_mean": json.dumps(list(spec.mean)),
                           "input_std": json.dumps(list(spec.std)),
                           "input_layout": f"float32 (batch, {spec.in_chans}, {size}, {size}), normalised"}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
    return Path(out)


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
