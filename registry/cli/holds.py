"""``artifact-store hold place|release|ls``, and the client ``retention extend`` shares.

Like push and pull, these talk to a running registry over HTTP (``--server``,
default http://127.0.0.1:5000; ``ARTIFACT_STORE_SERVER``), so every hold is
placed by the same code path, under the same authorization, and recorded
with the same actor as one placed through the API. They sign in as push and
pull do (``registry.cli.credentials``): ``--username``/``--password`` or
``ARTIFACT_STORE_USERNAME``/``ARTIFACT_STORE_PASSWORD``, an API token in
``ARTIFACT_STORE_TOKEN``, or the login ``artifact-store login`` kept.

Exit codes: 0 done; 1 the registry refused (the message says why, e.g.
DENIED: retention can only be extended); 2 bad arguments or the registry
could not be reached.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import httpx
import typer

from oci.digest import Digest
from oci.errors import RegistryError
from oci.reference import validate_repository, validate_tag
from registry.cli.client import open_http, raise_for
from registry.cli.client_auth import ClientError, Credentials
from registry.cli.common import (
    DEFAULT_SERVER,
    PasswordOpt,
    ServerOpt,
    UsernameOpt,
    fail,
    sign_in,
)

__all__ = ["HoldClient", "JsonOpt", "call", "hold_app", "open_client", "parse_target"]

hold_app = typer.Typer(
    help="Legal holds: keep content undeletable until released (docs/holds.md).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


class HoldClient:
    """The /api/v1/ hold and retention endpoints, signed in as the server asks."""

    def __init__(self, server: str, credentials: Credentials | None = None) -> None:
        self._http = open_http(server, credentials, connections=1, timeout=60.0)

    def __enter__(self) -> HoldClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _call(self, what: str, method: str, url: str, **kw: Any) -> Any:
        response = self._http.request(method, url, **kw)
        raise_for(response, what)
        return response.json()

    def place(self, repository: str, reference: str | None, reason: str) -> dict[str, Any]:
        body = {"repository": repository, "reference": reference, "reason": reason}
        # ?repository= lets a repository's admins (not only registry admins) place it.
        params = {"repository": repository}
        target = repository if reference is None else f"{repository} {reference}"
        found: dict[str, Any] = self._call(
            f"hold {target}", "POST", "/api/v1/holds", json=body, params=params
        )
        return found

    def release(self, hold_id: str, reason: str, repository: str | None) -> dict[str, Any]:
        params = {} if repository is None else {"repository": repository}
        found: dict[str, Any] = self._call(
            f"release hold {hold_id}",
            "DELETE",
            f"/api/v1/holds/{hold_id}",
            json={"reason": reason},
            params=params,
        )
        return found

    def list(self, repository: str | None) -> list[dict[str, Any]]:
        params = {} if repository is None else {"repository": repository}
        found: list[dict[str, Any]] = self._call(
            "list holds", "GET", "/api/v1/holds", params=params
        )["holds"]
        return found

    def extend(self, name: str, version: str, until: dt.datetime) -> dict[str, Any]:
        url = f"/api/v1/artifacts/{name}/versions/{version}/retention"
        found: dict[str, Any] = self._call(
            f"extend {name} {version}", "POST", url, json={"until": until.isoformat()}
        )
        return found


def parse_target(value: str) -> tuple[str, str | None]:
    """``REPO``, ``REPO:TAG`` or ``REPO@DIGEST`` -> (repository, reference or None)."""
    if "@" in value:
        name, _, digest = value.partition("@")
        return validate_repository(name), str(Digest.parse(digest))
    name, sep, tag = value.rpartition(":")
    if sep and "/" not in tag:
        return validate_repository(name), validate_tag(tag)
    return validate_repository(value), None


def open_client(server: str, username: str | None, password: str | None) -> HoldClient:
    return HoldClient(server, sign_in(server, username, password))


def call(client: HoldClient, action: str, *args: Any) -> Any:
    try:
        return getattr(client, action)(*args)
    except ClientError as exc:  # a refusal, or AuthError: the server would not sign us in
        fail(str(exc), 1)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the registry: {exc}")


def _reference(hold: dict[str, Any]) -> str:
    if hold["tag"]:
        return f"{hold['repository']}:{hold['tag']} ({hold['digest'][:19]})"
    if hold["digest"]:
        return f"{hold['repository']}@{hold['digest']}"
    return f"{hold['repository']} (whole repository)"


@hold_app.command("place")
def place(
    target: Annotated[str, typer.Argument(metavar="REPO[@DIGEST|:TAG]")],
    reason: Annotated[str, typer.Option("--reason", help="Why (a case number, a ticket).")],
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Hold a repository, a manifest (@DIGEST) or a version (:TAG); prints the hold's id."""
    try:
        repository, reference = parse_target(target)
    except RegistryError as exc:
        fail(exc.message)
    with open_client(server, username, password) as client:
        hold = call(client, "place", repository, reference, reason)
    if as_json:
        typer.echo(json.dumps(hold, indent=2))
        return
    typer.echo(f"held {_reference(hold)}", err=True)
    typer.echo(hold["id"])


@hold_app.command("release")
def release(
    hold_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason", help="Why it may be lifted.")],
    repository: Annotated[
        str | None,
        typer.Option("--repository", help="The hold's repository (lets its admins release it)."),
    ] = None,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """Release a hold; what it protected becomes deletable again."""
    with open_client(server, username, password) as client:
        hold = call(client, "release", hold_id, reason, repository)
    if as_json:
        typer.echo(json.dumps(hold, indent=2))
        return
    typer.echo(f"released {hold['id']} on {_reference(hold)}")


@hold_app.command("ls")
def ls(
    repository: Annotated[str | None, typer.Argument(metavar="[REPO]")] = None,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    username: UsernameOpt = None,
    password: PasswordOpt = None,
) -> None:
    """List the active holds (of REPO, or all)."""
    with open_client(server, username, password) as client:
        found = call(client, "list", repository)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not found:
        console.print("No active holds.")
        return
    table = Table(title="Legal holds")
    table.add_column("id", no_wrap=True)
    for column in ("repository", "held", "reason", "placed by", "placed at"):
        table.add_column(column, overflow="fold")
    for hold in found:
        if hold["digest"] is None:
            held = "everything"
        elif hold["tag"]:
            held = f":{hold['tag']}"
        else:
            held = f"@{hold['digest'][:19]}"  # algorithm and 12 hex digits; --json has it all
        table.add_row(
            hold["id"], hold["repository"], held, hold["reason"], hold["placed_by"],
            hold["placed_at"],
        )  # fmt: skip
    console.print(table)
