"""Fixtures shared by the whole suite: one Ray instance per session, and the executors that
flows are run on (every flow test runs on both and must give the same results)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from engine import InlineExecutor

ROOT = Path(__file__).resolve().parent.parent
# The gateways' incident logs of test runs go to a scratch directory, not the working tree
# (set before any test module reads the city config, which resolves the path).
_HOME = tempfile.mkdtemp(prefix="citystream-tests-")
os.environ["CITYSTREAM_HOME"] = _HOME


@pytest.fixture(scope="session", autouse=True)
def scratch_home():
    yield Path(_HOME)
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_instance():
    """A local Ray instance for the whole session, stopped at its end.

    Flows built in tests refer to functions of the test modules; Ray's workers import them
    by name, so the test folders go on the workers' PYTHONPATH (they inherit the environment
    of the Ray processes this fixture starts).
    """
    import ray

    if ray.is_initialized():
        yield ray
        return
    folders = sorted({str(Path(p).resolve()) for p in sys.path if p and Path(p).resolve().is_relative_to(ROOT / "tests")})
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "RAY_AUTH_MODE")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *folders, *filter(None, [saved["PYTHONPATH"]])])
    os.environ["RAY_AUTH_MODE"] = "disabled"
    # Metrics reach the Prometheus endpoint every 2 s rather than 10 s, so that a test can read them.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _system_config={"metrics_report_interval_ms": 2000},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(params=["inline", "ray"])
def executor(request):
    """Each flow test runs once per executor."""
    if request.param == "inline":
        return InlineExecutor()
    request.getfixturevalue("ray_instance")
    from engine import ChannelOptions, RayExecutor

    # Small frames and a short linger, so that tests exercise micro-batching and credits.
    return RayExecutor(channels=ChannelOptions(credits=4, batch_rows=4096, linger_ms=2), start_timeout_s=60)
