import os
from pathlib import Path

import numpy as np
import pytest

TESTDATA_VARIABLE = "PPSEARCH_TESTDATA"
DEFAULT_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The original corruption/perturbation generators' outputs (and the reference frost textures):
    from $PPSEARCH_TESTDATA, by default ../shared/testdata beside the checkout. A stranger's clone
    has none and skips these tests; CI (CI=true) has them and fails rather than skip."""
    path = Path(os.environ.get(TESTDATA_VARIABLE, DEFAULT_TESTDATA))
    if not path.is_dir():
        message = f"reference outputs not found at {path}: set {TESTDATA_VARIABLE} to the shared/testdata folder"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must run the reference tests)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def cifar10c_reference(testdata) -> dict[str, np.ndarray]:
    """The original CIFAR-10-C generator's outputs on the 64 test images: ``clean`` and one
    (severities, images, H, W, C) array per corruption."""
    with np.load(testdata / "cifar10c_reference.npz") as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="session")
def local_ray():
    """One real local Ray for the whole session, small enough for a 2-core CI machine."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150_000_000,
             logging_level="ERROR")
    yield
    ray.shutdown()
