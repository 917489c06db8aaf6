"""A CNCF distribution 2.8.2 peer for the conformance tests, one per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.peer import DISTRIBUTION, distribution


@pytest.fixture(scope="session")
def distribution_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not DISTRIBUTION.exists():
        # CI installs the Debian package; there this skip fails the run.
        pytest.skip(f"{DISTRIBUTION} is not installed (Debian package docker-registry)")
    with distribution(tmp_path_factory.mktemp("distribution")) as url:
        yield url
