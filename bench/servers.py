"""Registry servers as real subprocesses on loopback, for the benchmark and the client tests.

Both callers need the same thing: start a registry on a free port with a
private data directory, wait until ``GET /v2/`` answers 200, hand out its
address, and make sure the process is gone afterwards even when the caller
fails. The peer is CNCF distribution 2.8.2 (the ``docker-registry`` binary of
Debian's package), so the benchmark and the client tests can run the same
code against it and against artifact-store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

__all__ = [
    "DISTRIBUTION_BINARY",
    "RegistryProcess",
    "RssSampler",
    "ServerStartError",
    "artifact_store",
    "answers",
    "artifact_store_command",
    "distribution",
    "free_port",
    "running",
]

DISTRIBUTION_BINARY = "/usr/bin/docker-registry"


class ServerStartError(RuntimeError):
    """The registry process exited or never answered ``GET /v2/`` with 200."""


@dataclass
class RegistryProcess:
    """A running registry: where it listens and the process to measure."""

    name: str
    host: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def address(self) -> str:
        """``host:port``, the form clients put in front of a repository name."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


def free_port() -> int:
    """Ask the kernel for an unused loopback port (racy, but only against ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def artifact_store_command() -> list[str]:
    """The console script beside this interpreter, else the package's ``__main__``.

    Using the interpreter's own directory keeps the server in the same virtual
    environment as the caller, whatever ``PATH`` says.
    """
    script = shutil.which("artifact-store", path=str(Path(sys.executable).parent))
    if script is not None:
        return [script]
    return [sys.executable, "-m", "registry"]


def answers(url: str) -> Callable[[], bool]:
    """A readiness probe for ``running``: true once a GET of ``url`` answers 200."""

    def ready() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    return ready


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def running(
    name: str,
    argv: Sequence[str],
    log: Path,
    ready: Callable[[], bool],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` as a subprocess logging to ``log``, once ``ready()``; stopped on exit.

    A session of its own, so stopping it takes any children it started too
    (server workers, containerd under dockerd). ServerStartError if it exits
    or is not ready within ``timeout`` seconds.
    """
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "not ready"
                tail = log.read_text(errors="replace")[-2000:]
                raise ServerStartError(f"{name} ({' '.join(argv)}): {why}:\n{tail}")
            time.sleep(0.1)
        yield proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def _launch(
    name: str, argv: list[str], url: str, log: Path, timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    with running(name, argv, log, answers(f"{url}/v2/"), timeout=timeout) as proc:
        yield proc


@contextlib.contextmanager
def artifact_store(
    data_dir: Path,
    *,
    timeout: float = 60.0,
    name: str = "artifact-store",
    options: tuple[str, ...] = (),
) -> Iterator[RegistryProcess]:
    """``artifact-store serve [options]`` on a free loopback port, storing under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = RegistryProcess(name, "127.0.0.1", port, data_dir)
    server.log_path = data_dir.parent / f"{data_dir.name}.log"
    argv = [
        *artifact_store_command(),
        "serve",
        "--listen",
        server.address,
        "--data-dir",
        str(data_dir),
        *options,
    ]
    with _launch(server.name, argv, server.url, server.log_path, timeout) as proc:
        server.process = proc
        yield server


_DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {address}
"""


@contextlib.contextmanager
def distribution(data_dir: Path, *, timeout: float = 30.0) -> Iterator[RegistryProcess]:
    """CNCF distribution 2.8.2 with filesystem storage and deletes enabled."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = RegistryProcess("distribution", "127.0.0.1", port, data_dir)
    server.log_path = data_dir.parent / f"{data_dir.name}.log"
    config = data_dir.parent / f"{data_dir.name}.yml"
    config.write_text(_DISTRIBUTION_CONFIG.format(root=data_dir, address=server.address))
    argv = [DISTRIBUTION_BINARY, "serve", str(config)]
    with _launch(server.name, argv, server.url, server.log_path, timeout) as proc:
        server.process = proc
        yield server


@dataclass
class RssSampler:
    """Samples the resident set of a process and its children from a thread.

    Children are summed because a server may fork workers (hypercorn can); the
    peak is the largest sum seen, so it is a lower bound of the true peak,
    within one sampling interval.
    """

    pid: int
    interval: float = 0.05
    peak: int = 0
    # The largest sum since the last ``start_window``.
    window_peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._sample()
            self.peak = max(self.peak, rss)
            self.window_peak = max(self.window_peak, rss)
            self._stop.wait(self.interval)

    def start_window(self) -> int:
        """Restart ``window_peak`` from the current RSS, which is returned."""
        rss = self._sample()
        self.window_peak = rss
        return rss

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name=f"rss-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
