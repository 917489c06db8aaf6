"""``artifact-store gc``: one garbage collection run against the configured stores.

It opens the database and the storage directly (as ``admin rebuild-views``
does), so it works whether or not servers are running: online GC is the
point (ADR-0007). The progress bar goes to standard error, the summary
table (or ``--json``) to standard output.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.exc import ArgumentError

from oci.errors import RegistryError
from registry.cli.common import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    StorageOpt,
    fail,
    settings_from_flags,
    size,
)
from registry.config import ConfigError, Settings
from registry.lifecycle.gc import PHASES, GcProgress, GcReport, GcRunning, collect
from registry.rules import policy
from registry.service.registry import open_registry

__all__ = ["gc", "parse_duration"]


_LABELS = {
    "retention": ("retention", "manifests expired"),
    "links": ("links", "links removed"),
    "blobs": ("blobs", "blobs deleted"),
    "orphans": ("orphans", "orphaned blobs deleted"),
}


def parse_duration(text: str) -> dt.timedelta:
    """Seconds (``90``) or the lifecycle configuration's durations (``30m``, ``1h``, ``1d12h``)."""
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return dt.timedelta(seconds=float(value))
    try:
        return policy.parse_duration(value, "--grace")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


def _summary(report: GcReport) -> Table:
    verb = "would remove" if report.dry_run else "removed"
    title = f"garbage collection{' (dry run)' if report.dry_run else ''}"
    caption = f"kept everything newer than {report.cutoff:%Y-%m-%d %H:%M:%S} UTC"
    table = Table(title=title, caption=caption)
    table.add_column("phase")
    table.add_column("scanned", justify="right")
    table.add_column(verb, justify="right")
    table.add_column("bytes freed", justify="right")
    table.add_column("time", justify="right")
    for name in PHASES:
        phase = report.phases[name]
        label, what = _LABELS[name]
        removed = f"{phase.removed} {what}"
        if name == "retention":
            removed += f", {report.tags_deleted} tags"
        table.add_row(
            label,
            str(phase.scanned),
            removed,
            size(phase.bytes_freed) if name in ("blobs", "orphans") else "-",
            f"{phase.seconds:.2f}s",
        )
    table.add_row(
        "total",
        "",
        f"{report.blobs_deleted + report.orphans_removed} blobs",
        size(report.bytes_freed),
        f"{sum(report.durations.values()):.2f}s",
        style="bold",
    )
    return table


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed; change nothing.")
    ] = False,
    grace: Annotated[
        str | None,
        typer.Option(
            "--grace",
            help="Keep what is younger than this (90s, 30m, 1h…; default gc_grace_seconds).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON, without a progress bar.")
    ] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    storage_url: StorageOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Garbage-collect blobs nothing references (online: servers keep serving)."""
    settings = settings_from_flags(
        data_dir=data_dir, database_url=database_url, storage_url=storage_url, config=config
    )
    window = (
        dt.timedelta(seconds=settings.lifecycle.gc_grace_seconds)
        if grace is None
        else parse_duration(grace)
    )
    err = Console(stderr=True)
    try:
        if as_json:
            report = anyio.run(lambda: _collect(settings, dry_run, window, None))
        else:
            with _Bar(err) as bar:
                report = anyio.run(lambda: _collect(settings, dry_run, window, bar.update))
    except GcRunning as exc:
        fail(str(exc), code=3)
    except RegistryError as exc:
        fail(exc.message)
    except ValueError as exc:
        fail(str(exc))
    except ArgumentError:
        fail(f"malformed database URL {settings.database.url!r}")
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        Console().print(_summary(report))


async def _collect(
    settings: Settings,
    dry_run: bool,
    grace: dt.timedelta,
    progress: Callable[[GcProgress], None] | None,
) -> GcReport:
    async with open_registry(settings) as registry:
        return await collect(registry, dry_run=dry_run, grace=grace, progress=progress)


class _Bar:
    """One rich progress row per phase, fed by ``collect``'s progress callback."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[removed]} removed, {task.fields[freed]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self._progress.tasks:  # the last phase's total is known only now
            self._progress.update(task.id, total=task.completed)
        self._progress.stop()

    def update(self, event: GcProgress) -> None:
        task = self._tasks.get(event.phase)
        if task is None:
            for name, other in self._tasks.items():  # phases run one after the other
                if name != event.phase:
                    self._progress.update(other, total=self._progress.tasks[other].completed)
            task = self._tasks[event.phase] = self._progress.add_task(
                event.phase, total=event.total, removed=0, freed=size(0)
            )
        self._progress.update(
            task,
            completed=event.scanned,
            total=event.total,
            removed=event.removed,
            freed=size(event.bytes_freed),
        )
