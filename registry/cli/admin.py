"""``artifact-store admin``: operator commands that open the stores directly.

``rebuild-views`` replays the event log; ``copy-storage`` copies every blob
to another backend with progress bars. The copy logic lives in
``registry.admin`` (plain async functions, no terminal I/O); this module
opens the stores and draws progress. rich draws on stderr, so the one-line
summary on stdout stays scriptable. The account, policy, tenant and key
groups (and ``audit``) are ``registry.cli.auth``'s; they are added here.
"""

from __future__ import annotations

from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy.exc import ArgumentError

from oci.errors import RegistryError
from registry.admin.copy import CopyOutcome, CopyReport, copy_blobs, plan_copy
from registry.cli import auth
from registry.cli.common import ConfigOpt, DatabaseOpt, DataDirOpt, fail, settings_from_flags
from storage.base import BlobInfo
from storage.url import open_store

__all__ = ["admin_app", "copy_storage", "rebuild_views"]

admin_app = typer.Typer(help="Operator commands.", no_args_is_help=True)


@admin_app.command("rebuild-views")
def rebuild_views(
    data_dir: DataDirOpt = None, database_url: DatabaseOpt = None, config: ConfigOpt = None
) -> None:
    """Replay the event log into empty views."""
    from registry.meta import MetadataStore

    settings = settings_from_flags(data_dir=data_dir, database_url=database_url, config=config)

    async def _run() -> int:
        store = await MetadataStore.open(settings.resolved_database_url)
        try:
            return await store.rebuild_views()
        finally:
            await store.close()

    try:
        count = anyio.run(_run)
    except RegistryError as exc:
        fail(exc.message)
    except ValueError as exc:
        fail(str(exc))
    except ArgumentError:
        fail(f"malformed database URL {settings.database.url!r}")
    typer.echo(f"replayed {count} events into fresh views")


@admin_app.command("copy-storage")
def copy_storage(
    from_url: Annotated[str, typer.Option("--from", help="Source storage URL.")],
    to_url: Annotated[str, typer.Option("--to", help="Destination storage URL.")],
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Blobs copied at once.")] = 4,
) -> None:
    """Copy every blob to another backend, verified; rerun to resume or catch up."""
    try:
        report = anyio.run(lambda: _copy_with_progress(from_url, to_url, jobs=jobs))
    except ValueError as exc:
        fail(str(exc))
    except RegistryError as exc:
        fail(exc.message)
    typer.echo(
        f"copied {report.copied} blobs ({report.bytes_copied} bytes), skipped {report.skipped} "
        f"already present, {report.vanished} vanished, {len(report.failed)} failed"
    )
    for digest, reason in report.failed:
        typer.echo(f"failed {digest}: {reason}", err=True)
    if not report.ok:
        raise typer.Exit(1)


async def _copy_with_progress(from_url: str, to_url: str, *, jobs: int) -> CopyReport:
    """Copy every blob of ``from_url`` to ``to_url`` with progress on stderr.

    ValueError for a malformed URL; RegistryError when a store is unreachable.
    """
    source, dest = open_store(from_url), open_store(to_url)
    await source.check()
    await dest.check()
    console = Console(stderr=True)
    with console.status("listing the source…"):
        plan = await plan_copy(source)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        total = len(plan.blobs)
        task = progress.add_task(f"0/{total} blobs", total=plan.total_bytes)
        finished = 0

        def done(info: BlobInfo, outcome: CopyOutcome) -> None:
            nonlocal finished
            finished += 1
            progress.update(task, description=f"{finished}/{total} blobs")
            if outcome is CopyOutcome.FAILED:
                console.print(f"[red]failed[/red] {info.sha256}")

        return await copy_blobs(
            source, dest, plan, jobs=jobs, advance=lambda n: progress.advance(task, n), done=done
        )


admin_app.command("audit")(auth.audit_log)
admin_app.add_typer(auth.user_app, name="user")
admin_app.add_typer(auth.policy_app, name="policy")
admin_app.add_typer(auth.tenant_app, name="tenant")
admin_app.add_typer(auth.key_app, name="key")
