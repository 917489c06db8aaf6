"""``artifact-store serve`` as a child process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.servers import answers, running

__all__ = ["CLI", "free_port", "run_cli", "serving"]

# The console script's entry point, run by this interpreter (so it is the checkout under test).
CLI = [sys.executable, "-m", "registry"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_STORE_")}
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )


@contextmanager
def serving(
    args: Sequence[str], url: str, workdir: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``serve`` with ``args`` until ``url``/health answers; SIGTERM it on exit."""
    log_path = workdir / f"serve-{time.monotonic_ns()}.log"
    ready = answers(f"{url}/health")
    with running("serve", [*CLI, "serve", *args], log_path, ready, env=_env(env)) as process:
        yield process
