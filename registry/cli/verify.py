"""``artifact-store verify``: scrub the configured storage against the configured metadata.

Exit codes (docs/verify.md):

    0  nothing found
    1  problems found, and some are left (always the case without --repair)
    2  could not run: bad flags or configuration, database or storage unreachable
    3  problems found, and --repair repaired every one of them
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from registry.cli.common import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    StorageOpt,
    fail,
    settings_from_flags,
)
from registry.config import Settings

if TYPE_CHECKING:
    from rich.progress import Progress

    from registry.lifecycle.verify import VerifyProgress, VerifyReport

__all__ = [
    "EXIT_CLEAN",
    "EXIT_ERROR",
    "EXIT_LEFT",
    "EXIT_REPAIRED",
    "exit_code",
    "parse_duration",
    "verify",
]

EXIT_CLEAN, EXIT_LEFT, EXIT_ERROR, EXIT_REPAIRED = 0, 1, 2, 3
_SHOWN = 50  # findings listed in the human summary; --json lists all
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``90``, ``90s``, ``30m``, ``1h``, ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration such as 90s, 30m, 1h or 7d")
    return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def exit_code(report: VerifyReport) -> int:
    if report.ok:
        return EXIT_CLEAN
    return EXIT_REPAIRED if report.repaired and not report.unrepaired else EXIT_LEFT


def _print_summary(report: VerifyReport) -> None:
    from registry.lifecycle.verify import summary_lines

    for line in summary_lines(report):
        typer.echo(line)
    for finding in report.findings[:_SHOWN]:
        where = f" in {finding.repository}" if finding.repository else ""
        if finding.manifest:
            where += f"@{finding.manifest}"
        line = f"{finding.kind:<13} {finding.digest}{where}: {finding.detail}"
        refs = finding.referenced_by
        if refs:
            more = f" and {len(refs) - 3} more" if len(refs) > 3 else ""
            line += f" (referenced by {', '.join(refs[:3])}{more})"
        if finding.action:
            line += f" -> {finding.action}"
        typer.echo(line)
    if len(report.findings) > _SHOWN:
        typer.echo(f"... and {len(report.findings) - _SHOWN} more (--json lists every one)")


async def _run(
    settings: Settings,
    *,
    repair: bool,
    rehash: bool,
    grace: dt.timedelta,
    quarantine: Path | None,
    jobs: int,
    progress: Callable[[VerifyProgress], object] | None,
) -> VerifyReport:
    from registry.lifecycle.verify import verify
    from registry.service.registry import open_registry

    async with open_registry(settings) as registry:
        return await verify(
            registry,
            repair=repair,
            rehash=rehash,
            grace=grace,
            quarantine=quarantine,
            jobs=jobs,
            progress=progress,
        )


def verify(
    repair: Annotated[
        bool, typer.Option("--repair", help="Apply the repair policy (docs/verify.md).")
    ] = False,
    rehash: Annotated[
        bool,
        typer.Option("--rehash/--no-rehash", help="Re-hash every blob (default) or only stat."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    grace: Annotated[
        str | None,
        typer.Option(
            "--grace",
            help="Orphaned bytes younger than this are kept (default: the GC grace, 1h).",
        ),
    ] = None,
    quarantine: Annotated[
        Path | None,
        typer.Option("--quarantine", help="Where corrupt bytes go (<data-dir>/quarantine)."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Blobs hashed at once.")] = 4,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    storage_url: StorageOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Re-hash stored blobs and check metadata against storage (scrub)."""
    from sqlalchemy.exc import ArgumentError

    from oci.errors import RegistryError

    settings = settings_from_flags(
        data_dir=data_dir, database_url=database_url, storage_url=storage_url, config=config
    )
    window = (
        dt.timedelta(seconds=settings.lifecycle.gc_grace_seconds)
        if grace is None
        else parse_duration(grace)
    )
    bar, tick = _progress(rehash)
    try:
        with bar:
            report = anyio.run(
                lambda: _run(
                    settings,
                    repair=repair,
                    rehash=rehash,
                    grace=window,
                    quarantine=quarantine,
                    jobs=jobs,
                    progress=tick,
                )
            )
    except RegistryError as exc:
        fail(exc.message, EXIT_ERROR)
    except ValueError as exc:
        fail(str(exc), EXIT_ERROR)
    except ArgumentError:
        fail(f"malformed database URL {settings.database.url!r}", EXIT_ERROR)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_summary(report)
    raise typer.Exit(exit_code(report))


def _progress(rehash: bool) -> tuple[Progress, Callable[[VerifyProgress], None]]:
    """A progress bar on stderr (bytes hashed, or blobs checked) and the callback feeding it."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    amounts: tuple[ProgressColumn, ...] = (
        (DownloadColumn(), TransferSpeedColumn()) if rehash else (MofNCompleteColumn(),)
    )
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *amounts,
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = bar.add_task("hashing" if rehash else "checking", total=None)

    def tick(p: VerifyProgress) -> None:
        if rehash:
            bar.update(task, completed=p.bytes, total=p.total_bytes)
        else:  # sizes only: count blobs
            bar.update(task, completed=p.blobs, total=p.total_blobs)

    return bar, tick
