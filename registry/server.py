"""Run the app under Hypercorn (or Granian), after checking the configuration can work.

Configuration problems (a malformed URL, an unreachable database, a data
directory we cannot write) must end the process with one clear line, so
everything that can fail is opened before Hypercorn starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path

import anyio
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from sqlalchemy.exc import ArgumentError
from starlette.types import ASGIApp

from oci.errors import RegistryError
from registry.config import ConfigError, Settings, parse_listen
from registry.http.app import create_app
from registry.service.registry import open_registry

__all__ = ["run"]

log = logging.getLogger("artifact_store")


def _prepare_data_dir(settings: Settings) -> None:
    if settings.database_url and settings.storage_url:
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


async def _hypercorn(app: ASGIApp, host: str, port: int, stop: anyio.Event) -> None:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = log
    # Blob pushes can be large and slow; keep connections alive for them.
    config.keep_alive_timeout = 75
    config.h11_max_incomplete_size = 64 * 1024
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


async def _granian(app: ASGIApp, host: str, port: int, stop: anyio.Event) -> None:
    """Granian's embedded server: its Rust HTTP layer, our event loop and app.

    Embedded rather than Granian's usual worker processes because the
    registry is opened (and configuration checked) before serving starts, in
    this process; one process is also what the Hypercorn path runs. Granian
    runs the app's lifespan itself, as Hypercorn does.
    """
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server as GranianServer

    server = GranianServer(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        websockets=False,
        backlog=1024,
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


async def _serve(settings: Settings) -> None:
    host, port = parse_listen(settings.listen)
    _check_listen(host, port)
    try:
        registry_cm = open_registry(settings)
        registry = await registry_cm.__aenter__()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except ArgumentError:
        raise ConfigError(f"malformed database URL {settings.database_url!r}") from None
    try:
        app = create_app(settings, registry)
        stop = anyio.Event()

        def _stop(*_: object) -> None:
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop)
        log.info("artifact-store serving on http://%s:%d (%s)", host, port, settings.server)
        await _SERVERS[settings.server](app, host, port, stop)
    finally:
        await registry_cm.__aexit__(None, None, None)


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; ConfigError/RegistryError for bad configuration."""
    logging.basicConfig(
        level=os.environ.get("ARTIFACT_STORE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    _prepare_data_dir(settings)
    try:
        anyio.run(_serve, settings)
    except RegistryError as exc:
        raise ConfigError(exc.message) from None
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.listen}: {exc.strerror or exc}") from None
