"""Per-user credentials for the CLI: ``login``/``logout`` and what a command signs in with.

Logins are kept in ``$XDG_CONFIG_HOME/artifact-store/credentials.json``
(``~/.config/artifact-store/`` without it), one entry per server, written
atomically with mode 0600 in a 0700 directory, as docker and oras keep
theirs. Where the server speaks the token flow, ``login`` exchanges the
password for a refresh token (``POST /token``, ``grant_type=password``,
``access_type=offline``) and keeps only that: the password never reaches the
disk, and changing it on the server ends every stored login. A server that
only offers basic auth gets the password stored, as docker does.

A command signs in with, first found: ``--username``/``--password`` (or
``ARTIFACT_STORE_USERNAME``/``ARTIFACT_STORE_PASSWORD``), an API token in
``ARTIFACT_STORE_TOKEN``, the stored login for the server; else anonymously.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from registry.cli.client_auth import AuthError, Credentials, parse_challenge

__all__ = [
    "config_path",
    "forget",
    "login",
    "lookup",
    "remember",
    "resolve",
    "server_key",
]

_CLIENT_ID = "artifact-store-cli"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "artifact-store" / "credentials.json"


def server_key(server: str) -> str:
    """One spelling per server: ``http://HOST:PORT`` in lower case, default ports dropped."""
    if "://" not in server:
        server = "http://" + server
    parts = urlsplit(server)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme.lower()}://{host}{port}"


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {"servers": {}}
    except (OSError, ValueError) as exc:
        raise AuthError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("servers"), dict):
        raise AuthError(f"{path} is not an artifact-store credentials file")
    return document


def _write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    # Created 0600 from the start: the secret is never readable by others, not even briefly.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(document, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def lookup(server: str, path: Path | None = None) -> Credentials | None:
    entry = _read(path or config_path())["servers"].get(server_key(server))
    if not isinstance(entry, dict):
        return None
    return Credentials(
        username=entry.get("username"),
        password=entry.get("password"),
        refresh_token=entry.get("refresh_token"),
    )


def remember(server: str, credentials: Credentials, path: Path | None = None) -> Path:
    path = path or config_path()
    document = _read(path)
    entry = {
        "username": credentials.username,
        "password": credentials.password,
        "refresh_token": credentials.refresh_token,
    }
    document["servers"][server_key(server)] = {k: v for k, v in entry.items() if v is not None}
    _write(path, document)
    return path


def forget(server: str, path: Path | None = None) -> bool:
    """Remove the stored login for ``server``; False if there was none."""
    path = path or config_path()
    document = _read(path)
    if document["servers"].pop(server_key(server), None) is None:
        return False
    _write(path, document)
    return True


def resolve(
    server: str,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> Credentials | None:
    """What a command signs in with (see the module docstring); None: anonymous."""
    if username or password:
        if not (username and password is not None):
            raise AuthError("--username and --password go together")
        return Credentials(username=username, password=password)
    if token:
        return Credentials(token=token)
    return lookup(server)


def login(http: httpx.Client, username: str, password: str) -> Credentials:
    """Check ``username``/``password`` against the server; what ``remember`` should keep.

    ``http`` is a client on the server's base URL, without auth.
    """
    probe = http.get("/v2/")
    challenge = parse_challenge(probe.headers.get("www-authenticate"))
    if probe.status_code != 401 or challenge is None:
        if probe.status_code == 200:
            return Credentials(username=username, password=password)  # auth is off there
        raise AuthError(f"{http.base_url} answered GET /v2/ with HTTP {probe.status_code}")
    if challenge.scheme == "bearer" and "realm" in challenge.params:
        realm, service = challenge.params["realm"], challenge.params.get("service")
        form = {"grant_type": "password", "username": username, "password": password,
                "access_type": "offline", "client_id": _CLIENT_ID}  # fmt: skip
        if service:
            form["service"] = service
        answer = http.post(realm, data=form)
        if answer.status_code in (401, 403):
            raise AuthError(f"login failed for {username}: {_message(answer)}")
        refresh = answer.json().get("refresh_token") if answer.is_success else None
        if isinstance(refresh, str) and refresh:
            return Credentials(username=username, refresh_token=refresh)
        # A realm without the OAuth2 form: check the password the token spec's way.
        params = {"service": service} if service else {}
        checked = http.get(realm, params=params, auth=(username, password))
        if not checked.is_success:
            raise AuthError(f"login failed for {username}: {_message(checked)}")
        return Credentials(username=username, password=password)
    checked = http.get("/v2/", auth=(username, password))
    if not checked.is_success:
        raise AuthError(f"login failed for {username}: {_message(checked)}")
    return Credentials(username=username, password=password)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code}"
