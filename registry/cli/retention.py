"""``artifact-store retention plan|apply|extend``: what the rules delete; keeping longer.

``plan`` and ``apply`` open the configured stores directly, as ``gc`` does.
``extend`` talks to a running registry over HTTP, as the ``hold`` commands do
(``registry.cli.holds``), so a date is moved by the same code path and under
the same authorization as through the API.

Exit codes: 0 done (apply: every item deleted, or nothing to do), 1 apply
skipped some items (they were no longer eligible), or the registry refused
an extension; 2 bad flags or configuration, or a store or the registry
could not be reached.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer

from oci.errors import RegistryError
from registry.cli.common import (
    DEFAULT_SERVER,
    DatabaseOpt,
    DataDirOpt,
    PasswordOpt,
    ServerOpt,
    StorageOpt,
    UsernameOpt,
    fail,
    settings_from_flags,
    short_digest,
)
from registry.cli.holds import JsonOpt, call, open_client, parse_target
from registry.config import ConfigError, Settings

if TYPE_CHECKING:
    from registry.lifecycle.retention import ApplyReport, RetentionPlan
    from registry.service.registry import Registry

__all__ = ["apply_command", "extend", "parse_until", "plan_command", "retention_app"]

T = TypeVar("T")

retention_app = typer.Typer(
    help="Retention: what the rules make deletable, and deleting it (docs/lifecycle.md).",
    no_args_is_help=True,
)

_DURATION = re.compile(r"(\d{1,6})([hdwy])")
_UNITS = {
    "h": dt.timedelta(hours=1),
    "d": dt.timedelta(days=1),
    "w": dt.timedelta(weeks=1),
    "y": dt.timedelta(days=365),
}

ConfigOpt = Annotated[
    str | None, typer.Option("--config", help="TOML configuration file (holds the rules).")
]
RepositoryOpt = Annotated[
    str | None, typer.Option("--repository", help="Only this repository (default: all).")
]


def _run(current: Settings, action: Callable[[Registry], Awaitable[T]]) -> T:
    from registry.service.registry import open_registry

    async def _go() -> T:
        async with open_registry(current) as registry:
            return await action(registry)

    try:
        return anyio.run(_go)
    except RegistryError as exc:
        fail(exc.message)
    except (ConfigError, ValueError) as exc:
        fail(str(exc))


def _print_plan(found: RetentionPlan) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not found.deletions:
        console.print("Nothing is eligible for deletion.")
    else:
        table = Table(title=f"Retention plan {found.digest[:19]} at {found.to_json()['now']}")
        for column in ("delete", "repository", "reference", "rule", "why eligible", "unprotected"):
            table.add_column(column, overflow="fold")
        for item in found.deletions:
            reference = f":{item.tag}" if item.tag else f"@{short_digest(item.digest)}"
            table.add_row(
                item.kind, item.repository, reference, item.rule, item.detail,
                "; ".join(item.unprotected),
            )  # fmt: skip
        console.print(table)
    if found.kept:
        kept = Table(title="Eligible by a rule, but protected")
        for column in ("kind", "repository", "reference", "rule", "reason", "protected by"):
            kept.add_column(column, overflow="fold")
        for k in found.kept:
            reference = f":{k.tag}" if k.tag else f"@{short_digest(k.digest)}"
            kept.add_row(k.kind, k.repository, reference, k.rule, k.reason, k.protected_by)
        console.print(kept)
    tags = sum(1 for i in found.deletions if i.kind == "tag")
    console.print(
        f"{tags} tag(s) and {len(found.deletions) - tags} manifest(s) eligible; "
        f"{len(found.kept)} protected."
    )


@retention_app.command("plan")
def plan_command(
    repository: RepositoryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    storage_url: StorageOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List what retention would delete, each with its rule and why nothing protects it."""
    from registry.lifecycle.retention import plan

    current = settings_from_flags(
        data_dir=data_dir, database_url=database_url, storage_url=storage_url, config=config
    )
    found = _run(current, lambda registry: plan(registry, repository=repository))
    if as_json:
        typer.echo(json.dumps(found.to_json(), indent=2))
    else:
        _print_plan(found)


def _print_report(report: ApplyReport) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    for item in report.deleted:
        reference = f":{item.tag}" if item.tag else f"@{item.digest}"
        typer.echo(f"{verb} {item.kind} {item.repository}{reference} ({item.rule}: {item.reason})")
    for skipped in report.skipped:
        item = skipped.item
        reference = f":{item.tag}" if item.tag else f"@{item.digest}"
        typer.echo(f"skipped {item.kind} {item.repository}{reference}: {skipped.reason}")
    typer.echo(
        f"{len(report.deleted)} {verb}, {len(report.skipped)} skipped (plan {report.plan_digest})"
    )


@retention_app.command("apply")
def apply_command(
    repository: RepositoryOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Re-check every item; change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    storage_url: StorageOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Compute the plan, show it, and delete exactly its items that are still eligible."""
    from registry.lifecycle.retention import plan

    current = settings_from_flags(
        data_dir=data_dir, database_url=database_url, storage_url=storage_url, config=config
    )

    async def _go(registry: Registry) -> ApplyReport | None:
        found = await plan(registry, repository=repository)
        if not as_json:
            _print_plan(found)
        if not found.deletions:
            return None
        if not (yes or dry_run) and not await anyio.to_thread.run_sync(
            lambda: typer.confirm(f"Delete these {len(found.deletions)} item(s)?")
        ):
            raise typer.Exit(1)
        return await _apply_with_progress(registry, found, dry_run, quiet=as_json)

    report = _run(current, _go)
    if report is None:
        if as_json:
            typer.echo(json.dumps({"deleted": [], "skipped": [], "dry_run": dry_run}))
        return
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    if report.skipped:
        raise typer.Exit(1)


async def _apply_with_progress(
    registry: Registry, found: RetentionPlan, dry_run: bool, *, quiet: bool
) -> ApplyReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from registry.lifecycle.retention import apply

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=quiet,
        transient=True,
    ) as bar:
        task = bar.add_task("checking" if dry_run else "deleting", total=len(found.deletions))

        def advance(_item: Any, _skipped: str | None) -> None:
            bar.advance(task)

        return await apply(registry, found, dry_run=dry_run, progress=advance)


def parse_until(until: str | None, keep_for: str | None, now: dt.datetime) -> dt.datetime:
    """``--until`` (a date or an RFC 3339 time) or ``--for`` (``90d``, ``12w``, ``2y``, ``36h``)."""
    if (until is None) == (keep_for is None):
        raise ValueError("give exactly one of --until and --for")
    if keep_for is not None:
        match = _DURATION.fullmatch(keep_for)
        if match is None:
            raise ValueError(f"--for expects a duration like 90d, 12w, 2y or 36h, not {keep_for!r}")
        return now + int(match.group(1)) * _UNITS[match.group(2)]
    assert until is not None
    try:
        parsed = dt.datetime.fromisoformat(until)
    except ValueError:
        raise ValueError(f"--until expects YYYY-MM-DD or an RFC 3339 time, not {until!r}") from None
    if parsed.tzinfo is None:
        if len(until) > 10:
            raise ValueError(f"--until needs a time zone offset (or Z): {until!r}")
        parsed = parsed.replace(tzinfo=dt.UTC)  # a bare date: midnight UTC
    return parsed.astimezone(dt.UTC)


@retention_app.command("extend")
def extend(
    target: Annotated[str, typer.Argument(metavar="NAME:VERSION|NAME@DIGEST")],
    until: Annotated[
        str | None, typer.Option("--until", help="YYYY-MM-DD (UTC) or an RFC 3339 time.")
    ] = None,
    keep_for: Annotated[
        str | None, typer.Option("--for", help="From now: 90d, 12w, 2y or 36h.")
    ] = None,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Keep an artifact version longer; a date earlier than its current one is refused."""
    try:
        name, version = parse_target(target)
        if version is None:
            raise ValueError(f"expected NAME:VERSION or NAME@DIGEST, got {target!r}")
        when = parse_until(until, keep_for, dt.datetime.now(dt.UTC).replace(microsecond=0))
    except RegistryError as exc:
        fail(exc.message)
    except ValueError as exc:
        fail(str(exc))
    with open_client(server, username, password) as client:
        done = call(client, "extend", name, version, when)
    if as_json:
        typer.echo(json.dumps(done, indent=2))
        return
    typer.echo(f"{done['name']}:{version} ({done['digest']}) is kept until {done['until']}")
