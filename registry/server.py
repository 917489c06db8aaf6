"""Run the app under Hypercorn, after checking the configuration can work.

Configuration problems (a malformed URL, an unreachable database, a data
directory we cannot write) must end the process with one clear line, so
everything that can fail is opened before Hypercorn starts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path

import anyio
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from sqlalchemy.exc import ArgumentError

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
        config = Config()
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = log
        # Blob pushes can be large and slow; keep connections alive for them.
        config.keep_alive_timeout = 75
        config.h11_max_incomplete_size = 64 * 1024
        app = create_app(settings, registry)
        stop = anyio.Event()

        def _stop(*_: object) -> None:
            stop.set()

        loop_signals = (signal.SIGINT, signal.SIGTERM)
        import asyncio

        loop = asyncio.get_running_loop()
        for sig in loop_signals:
            loop.add_signal_handler(sig, _stop)
        log.info("artifact-store serving on http://%s:%d", host, port)
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
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
