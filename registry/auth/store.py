"""AuthStore: users, robot accounts, API tokens, policies and tenants in the metadata database.

Secrets are stored only as argon2id hashes. An API token reads
``ast_<id>_<secret>``: the id finds the row without scanning, the secret is
checked against its hash, so a token costs one lookup and one hash.
Every change is written to ``auth_audit`` in the same transaction, with the
actor who made it; secrets never enter the audit detail.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oci.errors import Denied
from registry.auth.policy import ROLES, Policy, Principal
from registry.auth.scope import ACTIONS
from registry.auth.tables import api_tokens, audit, policies, tenants, users
from registry.meta import usage_queries
from registry.meta.engine import connect_engine, dispose, normalize_url, write_transaction

__all__ = ["AuthStore", "Tenant", "User"]

# OWASP's argon2id floor (19 MiB, t=2, p=1): a guess costs tens of ms.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# A dummy hash to verify against when the user does not exist, so that
# "no such user" and "wrong password" take the same time.
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))
_POLICY_TTL = 2.0
TOKEN_PREFIX = "ast_"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    kind: str
    tenant: str | None
    roles: frozenset[str]
    created_at: dt.datetime
    credentials_changed_at: dt.datetime

    def principal(self) -> Principal:
        return Principal(self.name, self.kind, self.tenant, self.roles)


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    quota_bytes: int | None
    rate_per_second: float | None
    burst: int | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_roles(roles: Sequence[str]) -> frozenset[str]:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; known: {sorted(ROLES)}")
    return frozenset(roles)


def _verify(hashed: str, secret: str) -> bool:
    try:
        return _HASHER.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


class AuthStore:
    def __init__(self, engine: AsyncEngine, *, owns_engine: bool = True) -> None:
        self.engine = engine
        self._owns_engine = owns_engine
        self._policies: tuple[float, list[Policy]] | None = None

    @classmethod
    def open(cls, url: str) -> AuthStore:
        """Connect to a metadata database already migrated by ``MetadataStore.open``."""
        return cls(connect_engine(normalize_url(url)))

    async def close(self) -> None:
        if self._owns_engine:
            await dispose(self.engine)

    async def _audit(
        self, conn: AsyncConnection, actor: str, action: str, target: str, **detail: Any
    ) -> None:
        await conn.execute(
            audit.insert().values(
                ts=_now(), actor=actor, action=action, target=target, detail=detail
            )
        )

    # -- users -----------------------------------------------------------------

    async def add_user(
        self,
        name: str,
        password: str | None,
        *,
        kind: str = "user",
        tenant: str | None = None,
        roles: Sequence[str] = (),
        actor: str,
    ) -> User:
        role_set = _check_roles(roles)
        hashed = (
            None if password is None else await anyio.to_thread.run_sync(_HASHER.hash, password)
        )
        now = _now()
        async with write_transaction(self.engine) as conn:
            if (await conn.execute(sa.select(users.c.name).where(users.c.name == name))).first():
                raise ValueError(f"user {name!r} exists")
            await conn.execute(
                users.insert().values(
                    name=name,
                    kind=kind,
                    tenant=tenant,
                    roles=",".join(sorted(role_set)),
                    password_hash=hashed,
                    created_at=now,
                    credentials_changed_at=now,
                )
            )
            await self._audit(
                conn, actor, "user.added", name, kind=kind, tenant=tenant, roles=sorted(role_set)
            )
        return User(name, kind, tenant, role_set, now, now)

    async def remove_user(self, name: str, *, actor: str) -> None:
        async with write_transaction(self.engine) as conn:
            await conn.execute(api_tokens.delete().where(api_tokens.c.user == name))
            result = await conn.execute(users.delete().where(users.c.name == name))
            if result.rowcount == 0:
                raise ValueError(f"no user {name!r}")
            await self._audit(conn, actor, "user.removed", name)

    async def set_password(self, name: str, password: str, *, actor: str) -> None:
        hashed = await anyio.to_thread.run_sync(_HASHER.hash, password)
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(
                users.update()
                .where(users.c.name == name)
                .values(password_hash=hashed, credentials_changed_at=_now())
            )
            if result.rowcount == 0:
                raise ValueError(f"no user {name!r}")
            await self._audit(conn, actor, "user.password_changed", name)

    async def get_user(self, name: str) -> User | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.name == name))).first()
        if row is None:
            return None
        roles = frozenset(r for r in row.roles.split(",") if r)
        return User(
            row.name, row.kind, row.tenant, roles, row.created_at, row.credentials_changed_at
        )

    async def list_users(self) -> list[User]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(users.c.name).order_by(users.c.name))).scalars()
            names = list(rows)
        found = [await self.get_user(name) for name in names]
        return [user for user in found if user is not None]

    async def create_token(
        self,
        name: str,
        *,
        description: str = "",
        expires_in: dt.timedelta | None = None,
        actor: str,
    ) -> str:
        """A new API token for ``name``; the plain value is returned once and never stored."""
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        hashed = await anyio.to_thread.run_sync(_HASHER.hash, secret)
        now = _now()
        async with write_transaction(self.engine) as conn:
            if not (
                await conn.execute(sa.select(users.c.name).where(users.c.name == name))
            ).first():
                raise ValueError(f"no user {name!r}")
            await conn.execute(
                api_tokens.insert().values(
                    id=token_id,
                    user=name,
                    secret_hash=hashed,
                    description=description,
                    created_at=now,
                    expires_at=None if expires_in is None else now + expires_in,
                )
            )
            await self._audit(conn, actor, "token.created", name, token_id=token_id)
        return f"{TOKEN_PREFIX}{token_id}_{secret}"

    async def authenticate(self, name: str | None, secret: str) -> User | None:
        """The user behind a password or API token, or None. Constant work for unknown users."""
        if secret.startswith(TOKEN_PREFIX) and secret.count("_") >= 2:
            token_id, _, token_secret = secret[len(TOKEN_PREFIX) :].partition("_")
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id))
                ).first()
            hashed = _DUMMY if row is None else row.secret_hash
            ok = await anyio.to_thread.run_sync(_verify, hashed, token_secret)
            if row is None or not ok:
                return None
            if row.expires_at is not None and row.expires_at <= _now():
                return None
            if name and name != row.user:
                return None
            return await self.get_user(row.user)
        if not name:
            return None
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(sa.select(users.c.password_hash).where(users.c.name == name))
            ).scalar()
        ok = await anyio.to_thread.run_sync(_verify, found or _DUMMY, secret)
        if found is None or not ok:
            return None
        return await self.get_user(name)

    # -- policies --------------------------------------------------------------

    async def add_policy(
        self, subject: str, pattern: str, actions: Sequence[str], *, actor: str
    ) -> None:
        wanted = frozenset(actions)
        if not wanted or wanted - set(ACTIONS):
            raise ValueError(f"actions must be among {', '.join(ACTIONS)}")
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                policies.delete().where(
                    (policies.c.subject == subject) & (policies.c.pattern == pattern)
                )
            )
            await conn.execute(
                policies.insert().values(
                    subject=subject,
                    pattern=pattern,
                    actions=",".join(sorted(wanted)),
                    created_at=_now(),
                )
            )
            await self._audit(
                conn, actor, "policy.set", subject, pattern=pattern, actions=sorted(wanted)
            )
        self._policies = None

    async def remove_policy(self, subject: str, pattern: str, *, actor: str) -> None:
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(
                policies.delete().where(
                    (policies.c.subject == subject) & (policies.c.pattern == pattern)
                )
            )
            if result.rowcount == 0:
                raise ValueError(f"no policy for {subject} on {pattern}")
            await self._audit(conn, actor, "policy.removed", subject, pattern=pattern)
        self._policies = None

    async def policies(self) -> list[Policy]:
        """All policies; cached for two seconds, so a change reaches every process quickly."""
        cached = self._policies
        if cached is not None and time.monotonic() - cached[0] < _POLICY_TTL:
            return cached[1]
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(policies).order_by(policies.c.id))).all()
        found = [
            Policy(row.subject, row.pattern, frozenset(row.actions.split(","))) for row in rows
        ]
        self._policies = (time.monotonic(), found)
        return found

    # -- tenants ---------------------------------------------------------------

    async def set_tenant(
        self,
        name: str,
        *,
        quota_bytes: int | None = None,
        rate_per_second: float | None = None,
        burst: int | None = None,
        actor: str,
    ) -> None:
        async with write_transaction(self.engine) as conn:
            await conn.execute(tenants.delete().where(tenants.c.name == name))
            await conn.execute(
                tenants.insert().values(
                    name=name, quota_bytes=quota_bytes, rate_per_second=rate_per_second, burst=burst
                )
            )
            await self._audit(
                conn,
                actor,
                "tenant.set",
                name,
                quota_bytes=quota_bytes,
                rate_per_second=rate_per_second,
                burst=burst,
            )

    async def get_tenant(self, name: str) -> Tenant | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(tenants).where(tenants.c.name == name))).first()
        return (
            None
            if row is None
            else Tenant(row.name, row.quota_bytes, row.rate_per_second, row.burst)
        )

    async def usage(self, tenant: str) -> int:
        """Bytes the tenant stores: ``usage_parts`` added up."""
        blob_bytes, manifest_bytes = await self.usage_parts(tenant)
        return blob_bytes + manifest_bytes

    async def usage_parts(self, tenant: str) -> tuple[int, int]:
        """Bytes of the distinct blobs linked into any of the tenant's repositories, and
        of its distinct manifests (by digest: a manifest in two repositories counts once).

        Computed from the views, which replay from the event log, so usage is
        always recomputable from the log (``admin rebuild-views``).
        """
        async with self.engine.connect() as conn:
            return await usage_queries.usage_parts(conn, tenant)

    async def tenant_references(self, tenant: str, sha256: str) -> bool:
        """Whether the tenant already links the blob, so storing it again costs nothing."""
        async with self.engine.connect() as conn:
            return await usage_queries.tenant_links_blob(conn, tenant, sha256)

    async def tenant_holds_manifest(self, tenant: str, digest: str) -> bool:
        """Whether a repository of the tenant holds the manifest (pushing it again is free)."""
        async with self.engine.connect() as conn:
            return await usage_queries.tenant_holds_manifest(conn, tenant, digest)

    async def linked_blob(self, repository: str, digest: str) -> tuple[str, int] | None:
        """(sha256, size) of the blob ``digest`` names (by any of its digests), if
        ``repository`` links it: what a cross-repository mount from there would add."""
        async with self.engine.connect() as conn:
            return await usage_queries.linked_blob_size(conn, repository, digest)

    async def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(audit).order_by(audit.c.id.desc()).limit(limit))
            ).all()
        return [
            {
                "ts": r.ts.isoformat(),
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "detail": r.detail,
            }
            for r in rows
        ]


def quota_denied(tenant: str, quota: int, usage: int, incoming: int) -> Denied:
    return Denied(
        f"storage quota of tenant {tenant} exceeded",
        detail={
            "reason": "quota",
            "tenant": tenant,
            "quota": quota,
            "usage": usage,
            "incoming": incoming,
        },
    )
