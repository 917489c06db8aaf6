"""``artifact-store serve``: run the registry's HTTP server with settings from flags."""

from __future__ import annotations

from typing import Annotated

import typer

from registry.cli.common import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    StorageOpt,
    fail,
    settings_from_flags,
)
from registry.config import ConfigError

__all__ = ["serve"]


def serve(
    listen: Annotated[
        str | None, typer.Option("--listen", help="HOST:PORT (default 127.0.0.1:5000).")
    ] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    storage_url: StorageOpt = None,
    config: ConfigOpt = None,
    redirect_blobs: Annotated[
        bool | None,
        typer.Option(
            "--redirect-blobs/--no-redirect-blobs", help="307 blob GETs to presigned URLs."
        ),
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats-url", help="Publish events to NATS JetStream (nats://host:4222)."),
    ] = None,
    nats_subject: Annotated[
        str | None,
        typer.Option("--nats-subject", help="Subject prefix (default artifact-store.events)."),
    ] = None,
    auth: Annotated[
        bool | None,
        typer.Option("--auth/--no-auth", help="Require authentication (docs/auth.md)."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option("--server", help="ASGI server: hypercorn (default) or granian."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Server processes sharing the port (default 1)."),
    ] = None,
    upload_cache: Annotated[
        str | None,
        typer.Option(
            "--upload-cache",
            help="keep (default) or drop pushed bytes from the page cache once on disk.",
        ),
    ] = None,
) -> None:
    """Serve the registry (embedded defaults: SQLite + ./data)."""
    settings = settings_from_flags(
        listen=listen,
        server=server,
        data_dir=data_dir,
        database_url=database_url,
        storage_url=storage_url,
        config=config,
        redirect_blobs=redirect_blobs,
        nats_url=nats_url,
        nats_subject=nats_subject,
        auth=auth,
        upload_cache=upload_cache,
        workers=workers,
    )
    # Imported only now: the server's imports take seconds, and a mistyped
    # flag or config file should be reported at once.
    from registry.server import run

    try:
        run(settings)
    except ConfigError as exc:
        fail(str(exc))
