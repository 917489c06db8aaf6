"""``serve --workers N``: N server processes on one port over the same database and store."""

from __future__ import annotations

import multiprocessing.process
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import anyio
import httpx
import psutil
import pytest

from conformance import mismatches, run_checks
from oci.digest import Digest
from registry import server
from registry.config import ConfigError, Settings, load_settings
from tests.http._serve import free_port, serving


def _workers(supervisor: int) -> list[psutil.Process]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    workers = []
    for child in psutil.Process(supervisor).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.Error:  # ended, or a zombie the supervisor has yet to reap
            continue
    return workers


def _listening(supervisor: int, port: int) -> list[psutil.Process]:
    """The workers once each has its listening socket on ``port``: all of them serving."""
    workers = _workers(supervisor)
    for worker in workers:
        try:
            sockets = worker.net_connections(kind="tcp")
        except psutil.Error:
            return []
        if not any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in sockets):
            return []
    return workers


def _eventually(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _serving_connections(worker: psutil.Process, port: int) -> int:
    return sum(
        1
        for c in worker.net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.raddr and c.status == psutil.CONN_ESTABLISHED
    )


@contextmanager
def _two_workers(tmp_path: Path, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``serve --workers 2`` until both workers listen; the supervisor and the port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d"), *options]
    with serving([*args, "--workers", "2"], url, tmp_path) as process:
        _eventually(lambda: len(_listening(process.pid, port)) == 2, "two workers serving")
        yield process, port


@pytest.mark.parametrize("server", ["hypercorn", "granian"])
def test_workers_share_the_port_and_the_data(tmp_path: Path, server: str) -> None:
    with _two_workers(tmp_path, "--server", server) as (process, port):
        url = f"http://127.0.0.1:{port}"
        workers = _workers(process.pid)
        # Both answer: new connections are spread over the workers' sockets.
        clients = [httpx.Client(base_url=url) for _ in range(24)]
        try:
            for client in clients:
                assert client.get("/v2/").status_code == 200
            held = [_serving_connections(w, port) for w in workers]
        finally:
            for client in clients:
                client.close()
        assert sum(held) == 24
        assert min(held) > 0, held

        # An upload whose chunks arrive at whichever worker their connection reaches.
        chunks = [os.urandom(256 * 1024 + n) for n in range(8)]
        blob = b"".join(chunks)
        location = httpx.post(f"{url}/v2/spread/app/blobs/uploads/").headers["Location"]
        offset = 0
        for chunk in chunks:
            with httpx.Client() as fresh:
                answer = fresh.patch(
                    location,
                    content=chunk,
                    headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
                )
            assert answer.status_code == 202, answer.text
            offset += len(chunk)
            location = answer.headers["Location"]
        digest = Digest.compute(blob)
        assert httpx.put(location, params={"digest": str(digest)}).status_code == 201
        for _ in range(4):
            with httpx.Client() as fresh:
                assert fresh.get(f"{url}/v2/spread/app/blobs/{digest}").content == blob

        results = anyio.run(run_checks, url)
        assert mismatches(results) == []


def test_a_dead_worker_is_replaced_and_stop_ends_them_all(tmp_path: Path) -> None:
    with _two_workers(tmp_path) as (process, port):
        url = f"http://127.0.0.1:{port}"
        first = {w.pid for w in _workers(process.pid)}
        killed = sorted(first)[0]
        os.kill(killed, signal.SIGKILL)

        def replaced() -> bool:
            pids = {w.pid for w in _listening(process.pid, port)}
            return len(pids) == 2 and killed not in pids

        _eventually(replaced, "a new worker in place of the killed one")
        for _ in range(8):
            with httpx.Client() as fresh:
                assert fresh.get(f"{url}/v2/").status_code == 200
        workers = _workers(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == []


def test_workers_end_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    with _two_workers(tmp_path) as (process, port):
        workers = _workers(process.pid)
        process.kill()
        process.wait()
        gone, alive = psutil.wait_procs(workers, timeout=20)
        for orphan in alive:
            orphan.kill()
        assert alive == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2)


def _first_cannot_start(settings: Settings, parent: int, ready: EventType) -> None:
    """A worker of which the first started fails as a worker that cannot serve does."""
    try:
        os.close(os.open(os.environ["WORKER_FAILED_MARK"], os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        server._worker(settings, parent, ready)  # the real one (fresh in this process)
        return
    sys.exit(server._CANNOT_START)


def test_a_worker_that_cannot_start_stops_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor's own checks catch bad configuration before any worker starts; a
    worker can still fail on its own (a database gone since, an import error). Then it
    stops the others and fails with one line instead of restarting it forever."""
    monkeypatch.setattr(server, "_worker", _first_cannot_start)
    monkeypatch.setenv("WORKER_FAILED_MARK", str(tmp_path / "failed"))
    settings = load_settings(
        {"listen": f"127.0.0.1:{free_port()}", "data_dir": str(tmp_path / "d"), "workers": 2}
    )
    spawned: list[int] = []
    start = multiprocessing.process.BaseProcess.start

    def recorded(process: multiprocessing.process.BaseProcess) -> None:
        start(process)
        assert process.pid is not None
        spawned.append(process.pid)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", recorded)
    # A supervisor that restarted it instead would serve on: stop it as SIGTERM does.
    give_up = threading.Timer(60, os.kill, (os.getpid(), signal.SIGTERM))
    give_up.start()
    try:
        with pytest.raises(ConfigError, match=r"^worker \d could not start \(exit code 3\)$"):
            server.run(settings)
    finally:
        give_up.cancel()
    assert len(spawned) == 2  # the failed one was not started again
    assert not [pid for pid in spawned if psutil.pid_exists(pid)]  # the other was stopped
