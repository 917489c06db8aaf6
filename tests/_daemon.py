"""A long-running process for tests (the registry under test, containerd, dockerd): started,
waited for, and stopped with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest


@contextlib.contextmanager
def daemon(
    argv: Sequence[str],
    log_path: Path,
    ready: Callable[[], bool],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in a session of its own and wait until ``ready()``; on exit SIGTERM it
    (SIGKILL its session if it lingers), so no child it started outlives the test."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"{argv[0]} did not start:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.2)
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def succeeds(call: Callable[[], object]) -> Callable[[], bool]:
    """``ready`` for ``daemon``: true once ``call`` no longer fails (``run`` raising)."""

    def ready() -> bool:
        try:
            call()
        except AssertionError:
            return False
        return True

    return ready
