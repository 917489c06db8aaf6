"""``artifact-store admin user|policy|tenant|key …`` and ``admin audit``: operating auth.

Passwords are read from a hidden prompt or from standard input
(``--password-stdin``), never from an argument, which ``ps`` would show to
every user of the machine. A new API token is printed once; only its hash
is stored.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import anyio
import typer

from registry.auth.keys import KeyRing
from registry.auth.quota import usage_document
from registry.auth.store import AuthStore
from registry.cli.common import ConfigOpt, DatabaseOpt, DataDirOpt, fail, settings_from_flags
from registry.meta import MetadataStore

__all__ = ["audit_log", "key_app", "policy_app", "tenant_app", "user_app"]

T = TypeVar("T")

StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]

user_app = typer.Typer(help="Users and robot accounts.", no_args_is_help=True)
policy_app = typer.Typer(help="Repository policies.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants: quotas, rate limits, usage.", no_args_is_help=True)
key_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _password(stdin: bool) -> str:
    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not value:
        raise typer.BadParameter("the password is empty")
    return value


def _run(
    action: Callable[[AuthStore], Awaitable[T]],
    data_dir: str | None,
    database_url: str | None,
    config: str | None,
) -> T:
    settings = settings_from_flags(data_dir=data_dir, database_url=database_url, config=config)

    async def _go() -> T:
        # Opening the metadata store migrates the database (auth tables included).
        meta = await MetadataStore.open(settings.resolved_database_url)
        await meta.close()
        store = AuthStore.open(settings.resolved_database_url)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return anyio.run(_go)
    except ValueError as exc:
        fail(str(exc), 1)


@user_app.command("add")
def user_add(
    name: str,
    tenant_name: Annotated[
        str | None, typer.Option("--tenant", help="Confine the account to this tenant.")
    ] = None,
    role: Annotated[
        list[str] | None, typer.Option("--role", help="reader|writer|maintainer|admin")
    ] = None,
    robot: Annotated[bool, typer.Option("--robot", help="A robot account.")] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Tokens only (robots).")
    ] = False,
    password_stdin: StdinOpt = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a user or robot account."""
    secret = None if no_password else _password(password_stdin)
    kind = "robot" if robot else "user"
    _run(
        lambda s: s.add_user(
            name, secret, kind=kind, tenant=tenant_name, roles=role or [], actor=_actor()
        ),
        data_dir,
        database_url,
        config,
    )
    typer.echo(f"added {kind} {name}")


@user_app.command("rm")
def user_rm(
    name: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Remove an account and its API tokens."""
    _run(lambda s: s.remove_user(name, actor=_actor()), data_dir, database_url, config)
    typer.echo(f"removed {name}")


@user_app.command("passwd")
def user_passwd(
    name: str,
    password_stdin: StdinOpt = False,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Set a new password; refresh tokens issued before stop working."""
    secret = _password(password_stdin)
    _run(lambda s: s.set_password(name, secret, actor=_actor()), data_dir, database_url, config)
    typer.echo(f"password of {name} changed")


@user_app.command("token")
def user_token(
    name: str,
    description: Annotated[str, typer.Option("--description")] = "",
    expires_days: Annotated[float | None, typer.Option("--expires-days")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API token (use it as the password, or as a Bearer token)."""
    expires = None if expires_days is None else dt.timedelta(days=expires_days)
    token = _run(
        lambda s: s.create_token(name, description=description, expires_in=expires, actor=_actor()),
        data_dir,
        database_url,
        config,
    )
    typer.echo(token)


@user_app.command("list")
def user_list(
    data_dir: DataDirOpt = None, database_url: DatabaseOpt = None, config: ConfigOpt = None
) -> None:
    """List accounts."""
    for found in _run(lambda s: s.list_users(), data_dir, database_url, config):
        roles = ",".join(sorted(found.roles)) or "-"
        typer.echo(f"{found.name}\t{found.kind}\t{found.tenant or '*'}\t{roles}")


@policy_app.command("set")
def policy_set(
    subject: Annotated[
        str, typer.Argument(help="user:N, role:R, tenant:T, authenticated, anonymous")
    ],
    pattern: Annotated[str, typer.Argument(help="Repository glob: acme/*, acme/**, {tenant}/**")],
    actions: Annotated[str, typer.Argument(help="Comma-separated: pull,push,delete,admin")],
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Grant actions on matching repositories (``anonymous … pull`` marks them public)."""
    wanted = [a.strip() for a in actions.split(",") if a.strip()]
    _run(
        lambda s: s.add_policy(subject, pattern, wanted, actor=_actor()),
        data_dir,
        database_url,
        config,
    )
    typer.echo(f"{subject} may {','.join(wanted)} {pattern}")


@policy_app.command("rm")
def policy_rm(
    subject: str,
    pattern: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Remove a policy."""
    _run(
        lambda s: s.remove_policy(subject, pattern, actor=_actor()),
        data_dir,
        database_url,
        config,
    )
    typer.echo("removed")


@tenant_app.command("set")
def tenant_set(
    name: str,
    quota_bytes: Annotated[int | None, typer.Option("--quota-bytes")] = None,
    rate: Annotated[float | None, typer.Option("--rate", help="Requests per second.")] = None,
    burst: Annotated[int | None, typer.Option("--burst")] = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Set a tenant's storage quota and request rate (omitted: unlimited)."""
    _run(
        lambda s: s.set_tenant(
            name, quota_bytes=quota_bytes, rate_per_second=rate, burst=burst, actor=_actor()
        ),
        data_dir,
        database_url,
        config,
    )
    typer.echo(f"tenant {name} updated")


@tenant_app.command("usage")
def tenant_usage(
    name: str,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Bytes of distinct blobs and manifests the tenant stores, and its quota."""
    document = _run(lambda s: usage_document(s, name), data_dir, database_url, config)
    typer.echo(json.dumps(document))


@key_app.command("rotate")
def key_rotate(
    data_dir: DataDirOpt = None, database_url: DatabaseOpt = None, config: ConfigOpt = None
) -> None:
    """Sign new tokens with a fresh key; tokens signed before keep verifying."""
    kid = _run(lambda s: KeyRing(s.engine).rotate(actor=_actor()), data_dir, database_url, config)
    typer.echo(f"signing with key {kid}")


def audit_log(
    limit: Annotated[int, typer.Option("--limit")] = 50,
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Recent changes to users, tokens, policies, tenants and keys."""
    for entry in _run(lambda s: s.audit_log(limit), data_dir, database_url, config):
        typer.echo(json.dumps(entry))
