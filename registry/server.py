"""Run the app under Hypercorn (or Granian), after checking the configuration can work.

Configuration problems (a malformed URL, an unreachable database, a data
directory we cannot write) must end the process with one clear line, so
everything that can fail is opened before Hypercorn starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import anyio
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from sqlalchemy.exc import ArgumentError
from starlette.types import ASGIApp

from oci.errors import RegistryError
from registry.config import ConfigError, Settings, parse_listen
from registry.http.app import create_app
from registry.service.registry import Registry, open_registry

__all__ = ["run"]

log = logging.getLogger("artifact_store")


def _prepare_data_dir(settings: Settings) -> None:
    if settings.database.url and settings.storage.url:
        return
    path = Path(settings.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"data directory {path} is not writable: {exc.strerror}") from None


def _check_listen(host: str, port: int) -> None:
    """Bind the address once, the way Hypercorn will, so a taken port is a ConfigError.

    Hypercorn binds only after the app's lifespan has started; a failure
    there cancels the lifespan, which logs a traceback before the error
    reaches us. Probing first keeps the failure to one line.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _shared_listener(host: str, port: int) -> socket.socket:
    """A listening socket that the other worker processes bind too (``SO_REUSEPORT``).

    The kernel spreads new connections over the processes' sockets; a worker
    that stops takes only its own queue with it.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def _hypercorn(app: ASGIApp, host: str, port: int, stop: anyio.Event, shared: bool) -> None:
    config = Config()
    if shared:
        # Hypercorn takes over the socket (and closes it) through its fd.
        config.bind = [f"fd://{_shared_listener(host, port).detach()}"]
    else:
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = log
    # Blob pushes can be large and slow; keep connections alive for them.
    config.keep_alive_timeout = 75
    config.h11_max_incomplete_size = 64 * 1024
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


# How far Granian's HTTP/1 buffers may grow on a busy connection (its default
# is 400 KiB). They grow only while reads fill them, so an idle or slow
# connection keeps a small one; a 1 GiB push or pull on loopback then moves
# its body in fewer, larger pieces. Two paired benchmark runs, 4 MiB against
# the default (times distribution): push 1.84-2.00x against 1.53-1.89x, in
# 64 MiB PATCHes 1.81x against 1.42-1.60x, pull 1.30-1.32x against
# 1.09-1.20x (docs/PERFORMANCE.md).
_GRANIAN_BUFFER = 4 * 1024 * 1024


async def _granian(app: ASGIApp, host: str, port: int, stop: anyio.Event, shared: bool) -> None:
    """Granian's embedded server: its Rust HTTP layer, our event loop and app.

    On Linux Granian binds with ``SO_REUSEPORT`` itself, so worker processes
    (``shared``) need nothing more.

    Embedded rather than Granian's usual worker processes because the
    registry is opened (and configuration checked) before serving starts, in
    this process; one process is also what the Hypercorn path runs. Granian
    runs the app's lifespan itself, as Hypercorn does.
    """
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server as GranianServer

    server = GranianServer(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        websockets=False,
        backlog=1024,
        http1_settings=HTTP1Settings(max_buffer_size=_GRANIAN_BUFFER),
        # Granian warns that its embedded mode is experimental on every start;
        # errors still reach the log.
        log_level=LogLevels.error,
    )

    async def stop_when_asked() -> None:
        await stop.wait()
        server.stop()  # type: ignore[no-untyped-call]  # granian leaves it unannotated

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(stop_when_asked)
        await server.serve()
        tasks.cancel_scope.cancel()


_SERVERS = {"hypercorn": _hypercorn, "granian": _granian}


@contextlib.asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[Registry]:
    """The registry, with a malformed database or storage URL as a ConfigError."""
    try:
        registry_cm = open_registry(settings)
        registry = await registry_cm.__aenter__()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except ArgumentError:
        raise ConfigError(f"malformed database URL {settings.database.url!r}") from None
    try:
        yield registry
    finally:
        await registry_cm.__aexit__(None, None, None)


async def _check_registry(settings: Settings) -> None:
    """Open the registry once and close it: migrations run, and bad URLs fail, here."""
    async with _opened(settings):
        pass


async def _serve(
    settings: Settings, shared: bool = False, started: Callable[[], object] | None = None
) -> None:
    host, port = parse_listen(settings.server.listen)
    if not shared:
        _check_listen(host, port)  # the supervisor checked it for its workers
    async with _opened(settings) as registry:
        app = create_app(settings, registry)
        stop = anyio.Event()

        def _stop(*_: object) -> None:
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop)
        log.info(
            "artifact-store serving on http://%s:%d (%s, pid %d)",
            host,
            port,
            settings.server.server,
            os.getpid(),
        )
        if started is not None:
            started()
        await _SERVERS[settings.server.server](app, host, port, stop, shared)


def _run(listen: str, main: Callable[..., Awaitable[None]], *args: object) -> None:
    """``anyio.run(main, *args)``, with backend and listening errors as one-line ConfigErrors."""
    try:
        anyio.run(main, *args)
    except RegistryError as exc:
        raise ConfigError(exc.message) from None
    except OSError as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


def _configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("ARTIFACT_STORE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; ConfigError/RegistryError for bad configuration."""
    _configure_logging()
    _prepare_data_dir(settings)
    if settings.server.workers == 1:
        _run(settings.server.listen, _serve, settings)
    else:
        _supervise(settings)


# A worker that exits with this code could not start (its message is logged);
# the supervisor stops rather than start it again.
_CANNOT_START = 3
# The least time between two starts of one worker, so a crash loop is no busy loop.
_RESTART_SECONDS = 1.0


def _worker(settings: Settings, parent: int, ready: EventType) -> None:
    """One of ``serve --workers N``'s processes: a whole server on the shared port.

    ``ready`` is set once the registry is open and the server about to serve;
    a worker that ends before that could not start.
    """
    _end_with(parent)
    _configure_logging()
    try:
        _run(settings.server.listen, _serve, settings, True, ready.set)
    except ConfigError as exc:
        log.error("worker %d cannot serve: %s", os.getpid(), exc)
        sys.exit(_CANNOT_START)


def _end_with(parent: int) -> None:
    """Have the kernel stop this process when ``parent`` ends (Linux), however it ends."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before the request above
        sys.exit(0)


def _supervise(settings: Settings) -> None:
    """Run ``settings.server.workers`` server processes on one port; start again any that dies.

    Each worker is a whole server (its own event loop, connections and
    background tasks) over the shared database and store, which are built
    for several processes (docs/architecture.md); the kernel spreads
    connections over the workers' sockets (``SO_REUSEPORT``). SIGINT or
    SIGTERM stops them all, each finishing its requests as a single server
    does. A worker that cannot start stops the rest with its error.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers above 1 needs SO_REUSEPORT, which this system lacks")
    if settings.resolved_storage_url.lower().startswith("memory:"):
        raise ConfigError("memory:// storage lives in one process; --workers needs a shared store")
    host, port = parse_listen(settings.server.listen)
    _check_listen(host, port)
    _run(settings.server.listen, _check_registry, settings)  # migrations run once, here
    spawn = multiprocessing.get_context("spawn")
    workers: dict[int, tuple[BaseProcess, EventType, float]] = {}
    stopping = False
    failure: str | None = None

    def start(index: int) -> None:
        ready = spawn.Event()
        process = spawn.Process(
            target=_worker,
            args=(settings, os.getpid(), ready),
            name=f"artifact-store-worker-{index}",
        )
        process.start()
        workers[index] = (process, ready, time.monotonic())

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for process, _ready, _started in workers.values():
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index in range(settings.server.workers):
            start(index)
        log.info(
            "artifact-store: %d workers on %s", settings.server.workers, settings.server.listen
        )
        while workers:
            wait([process.sentinel for process, _, _ in workers.values()], timeout=1.0)
            for index, (process, ready, started) in list(workers.items()):
                if process.exitcode is None:
                    continue
                del workers[index]
                if stopping:
                    continue
                lived = time.monotonic() - started
                if process.exitcode == _CANNOT_START or not ready.is_set():
                    failure = f"worker {index} could not start (exit code {process.exitcode})"
                    log.error("%s; stopping the others", failure)
                    stop()
                else:
                    log.warning(
                        "worker %d (pid %s) ended with exit code %s after %.0f s; starting another",
                        index,
                        process.pid,
                        process.exitcode,
                        lived,
                    )
                    time.sleep(max(0.0, _RESTART_SECONDS - lived))
                    start(index)
    finally:
        stop()
        for process, _ready, _started in workers.values():
            process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure is not None:
        raise ConfigError(failure)
