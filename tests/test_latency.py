"""Measured latency: eager torch and ONNX Runtime timed by one code path, recorded with what ran it,
measured once per configuration and backend, and a backend that cannot run here refused in one line."""
import re
import sys

import pytest
import torch

from ppsearch.errors import UserError
from ppsearch.models import build_model
from ppsearch.models import latency as latency_module
from ppsearch.models.export import INSTALL_HINT, onnx_model
from ppsearch.models.latency import LatencySetup, cached_latency, measure_latency
from ppsearch.models.profile import profile_model
from ppsearch.rundir import LatencyBackend

pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install 'ppsearch[export]'")

IDENTITY = {"arch": "resnet8", "design": {"placement": "pp"}, "num_classes": 10}


def _model() -> torch.nn.Module:
    return build_model("resnet8", in_chans=1, placement="pp")


@pytest.mark.parametrize("backend", list(LatencyBackend))
def test_each_backend_measures_a_positive_latency_and_records_what_ran_it(backend):
    latency = measure_latency(_model(), in_chans=1, image_size=16, setup=LatencySetup(2, "cpu", backend))
    assert latency.median_ms > 0 and latency.spread_ms >= 0
    assert (latency.batch, latency.device, latency.backend, latency.threads) == (2, "cpu", backend.value,
                                                                                 torch.get_num_threads())
    assert latency.render().endswith(f"per batch of 2 on cpu, {torch.get_num_threads()} thread(s), {backend}")


def test_a_latency_is_cached_per_backend_and_read_back_without_measuring(tmp_path, monkeypatch):
    measured = {backend: cached_latency(_model(), IDENTITY, in_chans=1, image_size=16,
                                        setup=LatencySetup(backend=backend), cache=tmp_path) for backend in LatencyBackend}
    assert len(list(tmp_path.glob("*.json"))) == 2  # one measurement per backend

    def measure(*args, **kwargs):
        raise AssertionError("measured again instead of read from the cache")

    monkeypatch.setattr(latency_module, "measure_latency", measure)
    for backend in LatencyBackend:
        again = cached_latency(build_model("resnet8", in_chans=1), IDENTITY, in_chans=1, image_size=16,
                               setup=LatencySetup(backend=backend.value), cache=tmp_path)  # a backend by name, too
        assert again == measured[backend] and again.backend == backend.value


def test_the_plain_model_is_measured_with_the_designs_setup():
    profile = profile_model("resnet8", in_chans=1, image_size=16, placement="pp",
                            latency=LatencySetup(3, "cpu", LatencyBackend.ONNXRUNTIME))
    assert {(m.batch, m.backend) for m in (profile.latency, profile.plain_latency)} == {(3, "onnxruntime")}
    assert ", onnxruntime\n" in profile.render()


@pytest.mark.bad_input
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_onnxruntime_on_a_gpu_it_cannot_use_is_one_line_before_anything_runs(tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA")
    setup = LatencySetup(1, "cuda", LatencyBackend.ONNXRUNTIME)
    for measure in (lambda: measure_latency(_model(), in_chans=1, image_size=16, setup=setup),
                    lambda: cached_latency(_model(), IDENTITY, in_chans=1, image_size=16, setup=setup, cache=tmp_path)):
        with pytest.raises(UserError) as raised:
            measure()
        message = str(raised.value)
        assert "\n" not in message
        assert message.startswith("--latency-backend onnxruntime on cuda needs onnxruntime-gpu (this onnxruntime "
                                  "offers ") and message.endswith("CPUExecutionProvider only)")
    assert not list(tmp_path.iterdir())


@pytest.mark.bad_input
@pytest.mark.parametrize("package", ["onnxruntime", "onnxscript"])
def test_onnxruntime_without_the_export_extra_names_what_to_install(monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed: find_spec reports None
    with pytest.raises(UserError, match=f"^--latency-backend onnxruntime needs {package}: ") as raised:
        measure_latency(_model(), in_chans=1, image_size=16, setup=LatencySetup(backend=LatencyBackend.ONNXRUNTIME))
    assert str(raised.value).endswith(INSTALL_HINT)
    if package == "onnxscript":  # what the exporter needs, whoever asks for it
        with pytest.raises(UserError, match=f"^exporting to ONNX needs onnxscript: {re.escape(INSTALL_HINT)}$"):
            onnx_model(_model(), in_chans=1, image_size=16)
