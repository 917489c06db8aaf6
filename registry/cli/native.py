"""The producer/consumer commands: push, pull, ls, show, usage.

They are thin: the work is ``registry.cli.client.NativeClient``; these parse
flags, draw progress bars and print results. Every command that talks to a
server takes ``--username``/``--password`` (``registry.cli.credentials`` says
what else it signs in with).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from pathlib import Path
from typing import Annotated

import httpx
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

from oci.errors import RegistryError
from oci.native import ExternalLink, NativeFile, NativeManifest, Retention
from oci.reference import validate_repository, validate_tag
from registry.cli.client import ClientError, NativeClient, default_state_dir, raise_for
from registry.cli.common import (
    DEFAULT_SERVER,
    PasswordOpt,
    ServerOpt,
    UsernameOpt,
    fail,
    sign_in,
)

__all__ = ["ls", "parse_retention", "pull", "push", "show", "usage"]

_DURATION = re.compile(r"(\d{1,6})([dhw])")
_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
console = Console(stderr=True)


def _ref(value: str) -> tuple[str, str]:
    name, sep, version = value.rpartition(":")
    if not sep or not name:
        fail(f"expected NAME:VERSION, got {value!r}")
    try:
        return validate_repository(name), validate_tag(version)
    except RegistryError as exc:
        fail(exc.message)


def parse_retention(value: str, now: dt.datetime) -> Retention:
    """``90d``, ``CLASS:90d`` or ``CLASS``; a bare duration gets the class ``default``."""
    cls, _, duration = value.rpartition(":") if ":" in value else ("", "", value)
    match = _DURATION.fullmatch(duration)
    if match is None:
        return Retention(value)  # a class without a date
    until = now + int(match.group(1)) * _UNITS[match.group(2)]
    return Retention(cls or "default", until.replace(microsecond=0))


def _created() -> dt.datetime:
    # SOURCE_DATE_EPOCH (reproducible-builds.org) pins the time, so pushing
    # the same directory twice gives the same manifest and the same digest.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def push(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, dir_okay=True)],
    ref: Annotated[str, typer.Argument(metavar="NAME:VERSION")],
    label: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE")] = None,
    link: Annotated[list[str] | None, typer.Option("--link", help="SYSTEM:ID[=URL]")] = None,
    retention: Annotated[str | None, typer.Option(help="90d, CLASS:90d or CLASS")] = None,
    producer: Annotated[str | None, typer.Option()] = None,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 8,
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Upload DIRECTORY and publish it as NAME:VERSION (re-run to resume)."""
    name, version = _ref(ref)
    created = _created()
    try:
        labels = dict(_pair(x, "=", "--label") for x in label or [])
        links = [_link(x) for x in link or []]
        kept = None if retention is None else parse_retention(retention, created)
    except RegistryError as exc:
        fail(exc.message)
    lock = threading.Lock()
    signed = sign_in(server, username, password)
    client = NativeClient(server, default_state_dir(), workers, credentials=signed)
    with _bars() as bars, client:
        task = bars.add_task(f"push {name}:{version}", total=None)

        def scanned(files: list[NativeFile]) -> None:
            bars.update(task, total=sum(f.size for f in files))

        def advance(path: str, n: int) -> None:
            with lock:
                bars.advance(task, n)

        try:
            digest, counts = client.push(
                directory, name, version, labels=labels, links=links, retention=kept,
                producer=producer, run=run_id, created=created, progress=advance,
                on_scanned=scanned,
            )  # fmt: skip
        except (ClientError, RegistryError, OSError, httpx.HTTPError) as exc:
            fail(str(exc))
    summary = ", ".join(f"{n} {how}" for how, n in counts.items() if n)
    console.print(f"pushed {name}:{version} ({summary or 'no files'})")
    typer.echo(digest)


def _pair(value: str, sep: str, flag: str) -> tuple[str, str]:
    key, found, rest = value.partition(sep)
    if not found or not key:
        fail(f"{flag} expects KEY{sep}VALUE, got {value!r}")
    return key, rest


def _link(value: str) -> ExternalLink:
    system, ident = _pair(value, ":", "--link")
    ident, _, url = ident.partition("=")
    return ExternalLink(system, ident, url or None)


def pull(
    ref: Annotated[str, typer.Argument(metavar="NAME:VERSION")],
    directory: Annotated[Path, typer.Argument(file_okay=False)],
    workers: Annotated[int, typer.Option(min=1, max=64)] = 8,
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Restore NAME:VERSION into DIRECTORY, verifying sha256 and blake3 of every file."""
    name, version = _ref(ref)
    lock = threading.Lock()
    client = NativeClient(server, None, workers, credentials=sign_in(server, username, password))
    with _bars() as bars, client:
        task = bars.add_task(f"pull {name}:{version}", total=None)

        def started(m: NativeManifest) -> None:
            bars.update(task, total=sum(f.size for f in m.files))

        def advance(path: str, n: int) -> None:
            with lock:
                bars.advance(task, n)

        try:
            manifest = client.pull(name, version, directory, advance, started)
        except (ClientError, RegistryError, OSError, httpx.HTTPError) as exc:
            fail(str(exc))
    console.print(f"pulled {len(manifest.files)} file(s) into {directory}")


def ls(
    name: Annotated[str, typer.Argument()],
    label: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List the versions of NAME (tab-separated: version, digest, created, files)."""
    labels = dict(_pair(x, "=", "--label") for x in label or [])
    with NativeClient(server, credentials=sign_in(server, username, password)) as client:
        try:
            for item in client.versions(name, labels):
                m = item["manifest"]
                created = m.get("created", "-")
                typer.echo(f"{item['version']}\t{item['digest']}\t{created}\t{len(m['files'])}")
        except (ClientError, httpx.HTTPError) as exc:
            fail(str(exc))


def show(
    ref: Annotated[str, typer.Argument(metavar="NAME:VERSION")],
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Print the artifact (digest and native manifest) as JSON."""
    name, version = _ref(ref)
    with NativeClient(server, credentials=sign_in(server, username, password)) as client:
        try:
            typer.echo(json.dumps(client.show(name, version), indent=2, sort_keys=True))
        except (ClientError, httpx.HTTPError) as exc:
            fail(str(exc))


def usage(
    tenant: Annotated[str, typer.Argument(help="The tenant (first path component).")],
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Print the tenant's storage usage and quota as JSON (auth on; tenant accounts, admins)."""
    with NativeClient(server, credentials=sign_in(server, username, password)) as client:
        try:
            response = client.http.get(f"/api/v1/tenants/{tenant}/usage")
            raise_for(response, f"usage of {tenant}")
        except (ClientError, httpx.HTTPError) as exc:
            fail(str(exc))
    typer.echo(json.dumps(response.json(), sort_keys=True))
