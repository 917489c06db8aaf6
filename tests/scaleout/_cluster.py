"""``artifact-store serve`` processes sharing one PostgreSQL database and one bucket.

The scale-out promise (docs/deploy.md) is that N identical processes behind a
load balancer behave as one registry. These helpers start real processes, so
nothing one process keeps in memory can leak to another except through the
database and the bucket, as in production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.servers import artifact_store_command, free_port

_READY_TIMEOUT = 60.0


@dataclass
class Server:
    """One running process: where it answers and the handle to kill it with."""

    address: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def ref(self, repo: str, tag: str) -> str:
        """skopeo's ``docker://`` reference of ``repo:tag`` through this process."""
        return f"docker://{self.address}/{repo}:{tag}"

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when a node dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{server.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{server.url}/v2/").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready:\n{server.log.read_text()[-3000:]}")
            time.sleep(0.1)


def _launch(workdir: Path, database_url: str, storage_url: str, extra: tuple[str, ...]) -> Server:
    address = f"127.0.0.1:{free_port()}"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"serve-{address.replace(':', '-')}.log"
    argv = [
        *artifact_store_command(), "serve", "--listen", address, "--data-dir", str(workdir),
        "--database-url", database_url, "--storage-url", storage_url, *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Server(address, process, log)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@contextlib.contextmanager
def started(
    workdir: Path, database_url: str, storage_url: str, *flags: tuple[str, ...]
) -> Iterator[list[Server]]:
    """One process per entry of ``flags`` (its extra serve flags), on the same database
    and bucket, launched together.

    They start concurrently (Python start-up dominates); all are stopped on exit,
    the ones a test killed included.
    """
    servers: list[Server] = []
    try:
        for i, extra in enumerate(flags):
            servers.append(_launch(workdir / f"p{i}", database_url, storage_url, extra))
        for server in servers:
            _wait_ready(server)
        yield servers
    finally:
        for server in servers:
            _stop(server)
