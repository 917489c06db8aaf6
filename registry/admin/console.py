"""The terminal side of ``artifact-store admin`` commands: opening stores and progress bars.

Kept apart from ``copy.py`` so the copy logic stays free of terminal I/O; rich
draws on stderr, so the one-line summary on stdout stays scriptable.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from registry.admin.copy import CopyOutcome, CopyReport, copy_blobs, plan_copy
from storage.base import BlobInfo
from storage.url import open_store

__all__ = ["copy_storage"]


async def copy_storage(from_url: str, to_url: str, *, jobs: int) -> CopyReport:
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
