"""What every command shares: the error exit, the common options, settings and output helpers.

Two kinds of command read their options from here. Operator commands
(``serve``, ``gc``, ``verify``, ``retention plan``, ``admin …``) open the
database and the storage themselves, so they take ``--config``,
``--data-dir``, ``--database-url`` and ``--storage-url`` and build
``Settings`` with ``settings_from_flags``. User commands (push, pull,
``events tail``, ``hold``, ``retention extend``) talk to a running registry
over HTTP, so they take ``--server`` and sign in with ``sign_in``.

An error a user can fix ends the command through ``fail``: one line on
standard error, ``artifact-store: error: …``, and exit status 2 unless the
command documents another.
"""

from __future__ import annotations

import os
from typing import Annotated, NoReturn

import typer

from registry.cli import credentials
from registry.cli.client_auth import ClientError, Credentials
from registry.config import ConfigError, Settings, load_settings
from registry.rules.policy import policy_of

__all__ = [
    "DEFAULT_SERVER",
    "ConfigOpt",
    "DataDirOpt",
    "DatabaseOpt",
    "PasswordOpt",
    "ServerOpt",
    "StorageOpt",
    "UsernameOpt",
    "fail",
    "settings_from_flags",
    "short_digest",
    "sign_in",
    "size",
]

ConfigOpt = Annotated[str | None, typer.Option("--config", help="TOML configuration file.")]
DataDirOpt = Annotated[
    str | None, typer.Option("--data-dir", help="Data directory (default ./data).")
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="Metadata database URL: sqlite:///PATH or postgresql://…"),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage-url", help="Blob storage URL: a directory, file://, memory:// or s3://…"
    ),
]

DEFAULT_SERVER = "http://127.0.0.1:5000"
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
_TOKEN_ENV = "ARTIFACT_STORE_TOKEN"


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command: ``artifact-store: error: MESSAGE`` on stderr, exit status ``code``."""
    typer.echo(f"artifact-store: error: {message}", err=True)
    raise typer.Exit(code)


def settings_from_flags(**flags: object) -> Settings:
    """Settings from flags (None: not given), the environment and ``config`` (a TOML file)."""
    config = flags.pop("config", None)
    try:
        settings = load_settings(flags, config_file=config if isinstance(config, str) else None)
        policy_of(settings)  # a bad lifecycle table fails here, as one line
    except ConfigError as exc:
        fail(str(exc))
    return settings


def sign_in(server: str, username: str | None, password: str | None) -> Credentials | None:
    """The credentials a command uses: flags/env, then ``ARTIFACT_STORE_TOKEN``, then login."""
    try:
        return credentials.resolve(server, username, password, os.environ.get(_TOKEN_ENV) or None)
    except ClientError as exc:
        fail(str(exc))


def size(count: float, *, largest: str = "TiB") -> str:
    """``count`` bytes for people: ``512 B``, ``1.5 KiB`` … up to ``largest``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == largest:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise ValueError(f"unknown unit {largest!r}")


def short_digest(digest: object) -> str:
    """``sha256:`` and the first 12 hex digits; anything without an algorithm as it is."""
    text = str(digest)
    algorithm, _, hexpart = text.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else text
