"""Repository-wide pytest policy.

With ARTIFACT_STORE_REQUIRE_ALL_TESTS=1 (set by .ci/run) a skipped test fails
the session: every test in this repository must run in CI, so a missing
client, service or package shows up as a red run rather than a quiet skip.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Property tests judge correctness, not speed: on a loaded machine a slow
# draw is not a failure (benchmarks in bench/ measure speed).
settings.register_profile(
    "artifact-store", suppress_health_check=[HealthCheck.too_slow], deadline=None
)
settings.load_profile("artifact-store")

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("ARTIFACT_STORE_REQUIRE_ALL_TESTS") == "1" and _skipped:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"FAILED: {len(_skipped)} test(s) skipped; every test must run in CI:", red=True
            )
            for nodeid in _skipped:
                reporter.write_line(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
