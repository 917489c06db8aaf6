"""The auth tables, declared on the metadata schema's ``MetaData``.

They live in the same database as the event log so that every server
process sees the same users, keys, policies and rate-limit buckets (no state
only in one process's memory). They are not views of the event log:
``rebuild_views`` never touches them. Changes to users, tokens, policies and
tenants are recorded in ``auth_audit`` instead (docs/auth.md says why).

The migration ``r0002_auth`` creates exactly these tables.
"""

from __future__ import annotations

import sqlalchemy as sa

from registry.meta.tables import UTCDateTime, metadata

__all__ = [
    "api_tokens",
    "audit",
    "buckets",
    "policies",
    "signing_keys",
    "tenants",
    "users",
]


def _name() -> sa.types.TypeEngine[str]:
    return sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


users = sa.Table(
    "auth_users",
    metadata,
    sa.Column("name", _name(), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    # NULL: a registry-wide account; otherwise the one tenant it is confined to.
    sa.Column("tenant", _name(), nullable=True),
    sa.Column("roles", sa.String(255), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Refresh tokens issued before this instant stop working (password change).
    sa.Column("credentials_changed_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("kind IN ('user', 'robot')", name="kind"),
)

api_tokens = sa.Table(
    "auth_api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "user", _name(), sa.ForeignKey("auth_users.name", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("secret_hash", sa.String(255), nullable=False),
    sa.Column("description", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Index(None, "user"),
)

policies = sa.Table(
    "auth_policies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # "user:NAME", "role:ROLE", "tenant:NAME", "authenticated" or "anonymous".
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("pattern", sa.String(255), nullable=False),
    sa.Column("actions", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("subject", "pattern"),
)

signing_keys = sa.Table(
    "auth_signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("algorithm", sa.String(16), nullable=False),
    sa.Column("private_pem", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # A retired key still verifies the tokens it signed until they expire.
    sa.Column("retired_at", UTCDateTime, nullable=True),
)

tenants = sa.Table(
    "auth_tenants",
    metadata,
    sa.Column("name", _name(), primary_key=True),
    sa.Column("quota_bytes", sa.BigInteger, nullable=True),
    sa.Column("rate_per_second", sa.Float, nullable=True),
    sa.Column("burst", sa.Integer, nullable=True),
)

buckets = sa.Table(
    "auth_buckets",
    metadata,
    sa.Column("key", sa.String(320), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    # Seconds since the epoch of the last refill, from the server's clock.
    sa.Column("updated", sa.Float, nullable=False),
)

audit = sa.Table(
    "auth_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)
