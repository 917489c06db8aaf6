"""``artifact-store login`` and ``logout``: keep credentials for a server, or forget them.

The login is checked against the server before it is kept; what is kept
(a refresh token where the server issues one, else the password) and where
is ``registry.cli.credentials``'s.
"""

from __future__ import annotations

import sys
from typing import Annotated

import httpx
import typer
from rich.console import Console

from registry.cli import credentials as stored
from registry.cli.client_auth import ClientError
from registry.cli.common import PasswordOpt, UsernameOpt, fail

__all__ = ["login", "logout"]

console = Console(stderr=True)


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
        fail("an empty password cannot sign in")
    try:
        with httpx.Client(base_url=server.rstrip("/"), timeout=60.0) as http:
            kept = stored.login(http, user, secret)
        path = stored.remember(server, kept)
    except (ClientError, OSError, httpx.HTTPError) as exc:
        fail(str(exc))
    how = "a refresh token" if kept.refresh_token else "the password"
    console.print(f"Login succeeded: {user} at {stored.server_key(server)} ({how} kept in {path})")


def logout(
    server: Annotated[str, typer.Argument(help="Registry base URL.")],
) -> None:
    """Forget the stored login for SERVER."""
    try:
        removed = stored.forget(server)
    except (ClientError, OSError) as exc:
        fail(str(exc))
    if not removed:
        fail(f"not logged in to {stored.server_key(server)}")
    console.print(f"Removed the login for {stored.server_key(server)}")
