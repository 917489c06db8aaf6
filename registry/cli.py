"""The ``artifact-store`` command line."""

from __future__ import annotations

from typing import Annotated, NoReturn

import anyio
import typer
from sqlalchemy.exc import ArgumentError

from oci.errors import RegistryError
from registry.auth.commands import register as register_auth_commands
from registry.config import ConfigError, Settings, load_settings
from registry.events.commands import register as register_events
from registry.lifecycle.gc_commands import register as register_gc
from registry.lifecycle.hold_commands import register as register_holds
from registry.lifecycle.policy import policy_of
from registry.lifecycle.retention_commands import register as register_retention
from registry.lifecycle.verify_commands import register as register_verify
from registry.native.commands import register as register_native

__all__ = ["app", "main"]

app = typer.Typer(help="artifact-store: an OCI-distribution-first registry.", no_args_is_help=True)
admin = typer.Typer(help="Operator commands.", no_args_is_help=True)
app.add_typer(admin, name="admin")
register_native(app)
register_events(app)

ConfigOpt = Annotated[str | None, typer.Option("--config", help="TOML configuration file.")]
DataDirOpt = Annotated[
    str | None, typer.Option("--data-dir", help="Data directory (default ./data).")
]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="sqlite:///PATH or postgresql://…")
]
StorageOpt = Annotated[
    str | None, typer.Option("--storage-url", help="Directory, file://, memory:// or s3://…")
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"artifact-store: error: {message}", err=True)
    raise typer.Exit(2)


def _settings(**flags: object) -> Settings:
    config = flags.pop("config", None)
    try:
        settings = load_settings(flags, config_file=config if isinstance(config, str) else None)
        policy_of(settings)  # a bad lifecycle table fails here, as one line
    except ConfigError as exc:
        _fail(str(exc))
    return settings


@app.command()
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
    settings = _settings(
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
        _fail(str(exc))


@admin.command("rebuild-views")
def rebuild_views(
    data_dir: DataDirOpt = None, database_url: DatabaseOpt = None, config: ConfigOpt = None
) -> None:
    """Replay the event log into empty views."""
    from registry.meta import MetadataStore

    settings = _settings(data_dir=data_dir, database_url=database_url, config=config)

    async def _run() -> int:
        store = await MetadataStore.open(settings.resolved_database_url)
        try:
            return await store.rebuild_views()
        finally:
            await store.close()

    try:
        count = anyio.run(_run)
    except RegistryError as exc:
        _fail(exc.message)
    except ValueError as exc:
        _fail(str(exc))
    except ArgumentError:
        _fail(f"malformed database URL {settings.database.url!r}")
    typer.echo(f"replayed {count} events into fresh views")


@admin.command("copy-storage")
def copy_storage(
    from_url: Annotated[str, typer.Option("--from", help="Source storage URL.")],
    to_url: Annotated[str, typer.Option("--to", help="Destination storage URL.")],
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Blobs copied at once.")] = 4,
) -> None:
    """Copy every blob to another backend, verified; rerun to resume or catch up."""
    from registry.admin.console import copy_storage as run_copy

    try:
        report = anyio.run(lambda: run_copy(from_url, to_url, jobs=jobs))
    except ValueError as exc:
        _fail(str(exc))
    except RegistryError as exc:
        _fail(exc.message)
    typer.echo(
        f"copied {report.copied} blobs ({report.bytes_copied} bytes), skipped {report.skipped} "
        f"already present, {report.vanished} vanished, {len(report.failed)} failed"
    )
    for digest, reason in report.failed:
        typer.echo(f"failed {digest}: {reason}", err=True)
    if not report.ok:
        raise typer.Exit(1)


register_auth_commands(admin, _settings)
register_retention(app, _settings)
register_holds(app)
register_verify(app, _settings)
register_gc(app, _settings)


def main() -> None:
    app(prog_name="artifact-store")


if __name__ == "__main__":
    main()
