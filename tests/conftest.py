import os

import pytest


@pytest.fixture(scope="session")
def local_ray():
    """One real local Ray for the whole session, small enough for a 2-core CI machine."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150_000_000,
             logging_level="ERROR")
    yield
    ray.shutdown()
