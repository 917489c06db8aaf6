"""The registry the real clients talk to: a server process on a free loopback port.

By default a session starts ``artifact-store serve`` with a temporary data
directory and stops it at the end. ``ARTIFACT_STORE_CLIENTS_REGISTRY`` points
the same tests elsewhere, which is how they are checked against the peer
implementation:

- ``artifact-store`` (default) or ``distribution`` (CNCF distribution 2.8.2)
  starts that server;
- ``http://host:port`` uses a registry that is already running.

Every test gets its own repository name, so tests never see each other's
content and the order they run in does not matter.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bench.servers import artifact_store, distribution


@dataclass(frozen=True)
class Registry:
    """Where the registry under test answers: ``address`` is what clients prefix names with."""

    name: str
    address: str

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def ref(self, repo: str, tag_or_digest: str | None = None) -> str:
        """``docker://`` transport reference for skopeo."""
        if tag_or_digest is None:
            return f"docker://{self.address}/{repo}"
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        return f"docker://{self.address}/{repo}{sep}{tag_or_digest}"


@contextlib.contextmanager
def _registry(choice: str, tmp: Path) -> Iterator[Registry]:
    if choice in ("", "artifact-store"):
        with artifact_store(tmp / "data") as server:
            yield Registry(server.name, server.address)
    elif choice == "distribution":
        with distribution(tmp / "data") as server:
            yield Registry(server.name, server.address)
    elif choice.startswith("http://"):
        address = urlsplit(choice).netloc
        response = httpx.get(f"http://{address}/v2/", timeout=10.0)
        assert response.status_code == 200, f"{choice}/v2/ answered {response.status_code}"
        yield Registry("external", address)
    else:
        raise pytest.UsageError(f"ARTIFACT_STORE_CLIENTS_REGISTRY={choice!r} is not understood")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    choice = os.environ.get("ARTIFACT_STORE_CLIENTS_REGISTRY", "")
    with _registry(choice, tmp_path_factory.mktemp("registry")) as found:
        yield found


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name of the test's own, valid under the spec's name grammar."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"clients/{slug[:80]}"


@pytest.fixture
def http(registry: Registry) -> Iterator[httpx.Client]:
    """A plain HTTP client for checks the CLI clients cannot make (referrers, raw bytes)."""
    with httpx.Client(base_url=registry.url, timeout=60.0) as client:
        yield client
