"""The producer/consumer commands: push, pull, ls, show, usage, login, logout (``register``).

They are thin: the work is ``registry.client.NativeClient``; these parse
flags, draw progress bars and print results. Every command that talks to a
server takes ``--username``/``--password`` (``registry.credentials`` says
what else it signs in with).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Annotated, NoReturn

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
from registry import credentials as stored
from registry.client import ClientError, NativeClient, default_state_dir, raise_for
from registry.client_auth import Credentials

__all__ = [
    "DEFAULT_SERVER",
    "PasswordOpt",
    "ServerOpt",
    "UsernameOpt",
    "fail",
    "parse_retention",
    "register",
    "sign_in",
]

ServerOpt = Annotated[
    str,
    typer.Option("--server", envvar="ARTIFACT_STORE_SERVER", help="Registry base URL."),
]
UsernameOpt = Annotated[
    str | None,
    typer.Option("--username", "-u", envvar="ARTIFACT_STORE_USERNAME", help="Sign in as USER."),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="ARTIFACT_STORE_PASSWORD",
        help="Password or API token (prefer the environment variable or `login`).",
        show_envvar=True,
    ),
]
DEFAULT_SERVER = "http://127.0.0.1:5000"
_TOKEN_ENV = "ARTIFACT_STORE_TOKEN"
_DURATION = re.compile(r"(\d{1,6})([dhw])")
_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
console = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    typer.echo(f"artifact-store: error: {message}", err=True)
    raise typer.Exit(2)


fail = _fail


def sign_in(server: str, username: str | None, password: str | None) -> Credentials | None:
    """The credentials a command uses: flags/env, then ``ARTIFACT_STORE_TOKEN``, then login."""
    try:
        return stored.resolve(server, username, password, os.environ.get(_TOKEN_ENV) or None)
    except ClientError as exc:
        _fail(str(exc))


def _ref(value: str) -> tuple[str, str]:
    name, sep, version = value.rpartition(":")
    if not sep or not name:
        _fail(f"expected NAME:VERSION, got {value!r}")
    try:
        return validate_repository(name), validate_tag(version)
    except RegistryError as exc:
        _fail(exc.message)


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
        _fail(exc.message)
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
            _fail(str(exc))
    summary = ", ".join(f"{n} {how}" for how, n in counts.items() if n)
    console.print(f"pushed {name}:{version} ({summary or 'no files'})")
    typer.echo(digest)


def _pair(value: str, sep: str, flag: str) -> tuple[str, str]:
    key, found, rest = value.partition(sep)
    if not found or not key:
        _fail(f"{flag} expects KEY{sep}VALUE, got {value!r}")
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
            _fail(str(exc))
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
            _fail(str(exc))


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
            _fail(str(exc))


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
            _fail(str(exc))
    typer.echo(json.dumps(response.json(), sort_keys=True))


def login(
    server: Annotated[str, typer.Argument(help="Registry base URL, e.g. http://host:5000.")],
    username: UsernameOpt = None,
    password: PasswordOpt = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Check credentials against SERVER and keep them for later commands (mode 0600)."""
    if "://" not in server:
        server = "http://" + server
    user = username or typer.prompt("Username")
    if password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    elif password is not None:
        secret = password
    else:
        secret = typer.prompt("Password", hide_input=True)
    if not secret:
        _fail("an empty password cannot sign in")
    try:
        with httpx.Client(base_url=server.rstrip("/"), timeout=60.0) as http:
            kept = stored.login(http, user, secret)
        path = stored.remember(server, kept)
    except (ClientError, OSError, httpx.HTTPError) as exc:
        _fail(str(exc))
    how = "a refresh token" if kept.refresh_token else "the password"
    console.print(f"Login succeeded: {user} at {stored.server_key(server)} ({how} kept in {path})")


def logout(
    server: Annotated[str, typer.Argument(help="Registry base URL.")],
) -> None:
    """Forget the stored login for SERVER."""
    try:
        removed = stored.forget(server)
    except (ClientError, OSError) as exc:
        _fail(str(exc))
    if not removed:
        _fail(f"not logged in to {stored.server_key(server)}")
    console.print(f"Removed the login for {stored.server_key(server)}")


def register(app: typer.Typer) -> None:
    for command in (push, pull, ls, show, usage, login, logout):
        app.command()(command)
