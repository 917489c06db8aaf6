"""An in-process registry with auth on, on SQLite and on PostgreSQL metadata.

Accounts seeded in every test (passwords are the names reversed):

- ``root``: registry-wide admin;
- ``alice``: tenant ``acme``, maintainer (pull, push, delete);
- ``carol``: tenant ``acme``, maintainer too (a second writer of alice's repositories);
- ``reader``: tenant ``acme``, reader (pull);
- ``writer``: tenant ``acme``, writer (pull, push: no delete);
- ``bob``: tenant ``globex``, maintainer;
- anonymous may pull ``acme/public/**`` (a public repository).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from registry.auth import Authority, AuthStore
from registry.config import AuthSettings, DatabaseSettings, Settings
from registry.events import running_events
from registry.http.app import create_app
from registry.http.state import state_of
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["ACCOUNTS", "AuthServed", "authed", "basic", "make_url"]

BASE_URL = "http://registry.test"
ACCOUNTS = {
    "root": (None, ["admin"]),
    "alice": ("acme", ["maintainer"]),
    "carol": ("acme", ["maintainer"]),
    "reader": ("acme", ["reader"]),
    "writer": ("acme", ["writer"]),
    "bob": ("globex", ["maintainer"]),
}


def password(name: str) -> str:
    return name[::-1] + "-secret-pw"


def basic(name: str, secret: str | None = None) -> dict[str, str]:
    raw = f"{name}:{password(name) if secret is None else secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@dataclass
class AuthServed:
    app: Starlette
    registry: Registry
    authority: Authority
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("10.0.0.1", 1234))
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers)
        self.clients.append(client)
        return client

    def as_user(self, name: str) -> httpx.AsyncClient:
        return self.client(basic(name))

    async def token(self, name: str | None, *scopes: str, service: str = "artifact-store") -> str:
        client = self.client(basic(name) if name else None)
        response = await client.get("/token", params={"service": service, "scope": list(scopes)})
        assert response.status_code == 200, response.text
        token = response.json()["token"]
        assert isinstance(token, str)
        return token

    def bearer(self, token: str) -> httpx.AsyncClient:
        return self.client({"Authorization": f"Bearer {token}"})


def auth_settings(url: str, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        database=DatabaseSettings(url),
        auth=AuthSettings(enabled=True, **extra),  # type: ignore[arg-type]
    )


@pytest.fixture
def extra_settings() -> dict[str, object]:
    """Overridden by test modules that need other auth settings."""
    return {}


@pytest.fixture
async def authed(
    make_url: UrlFactory, tmp_path: Path, extra_settings: dict[str, object]
) -> AsyncIterator[AuthServed]:
    url = make_url()
    settings = auth_settings(url, tmp_path, **extra_settings)
    meta = await MetadataStore.open(url)
    store = AuthStore.open(url)
    authority = Authority(store, settings)
    for name, (tenant, roles) in ACCOUNTS.items():
        await store.add_user(name, password(name), tenant=tenant, roles=roles, actor="test")
    await store.add_policy("anonymous", "acme/public/**", ["pull"], actor="test")
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), settings)
    app = create_app(settings, registry, auth=authority)
    served = AuthServed(app, registry, authority)
    try:
        async with running_events(meta, None, settings.events.nats_subject) as events:
            state_of(app).events = events
            yield served
    finally:
        for client in served.clients:
            await client.aclose()
        await store.close()
        await meta.close()
