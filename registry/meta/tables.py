"""The metadata schema as SQLAlchemy Core tables.

``events`` is the source of truth; every other table is a view the
projector derives from it and ``rebuild_views`` may wipe and replay. The
Alembic migrations in ``migrations/versions`` create exactly this schema (a
test compares the two), so change both together.

Names and tags sort in byte order, as the distribution spec's lexical
pagination expects; PostgreSQL's default collation follows the locale, so
those columns use the "C" collation there (SQLite compares bytes already).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

__all__ = [
    "TIERS",
    "VIEWS",
    "UTCDateTime",
    "blobs",
    "events",
    "holds",
    "manifest_references",
    "manifests",
    "metadata",
    "repositories",
    "repository_blobs",
    "tags",
    "uploads",
]

TIERS = ("hot", "warm", "cold", "archive")


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timestamps are stored and returned as aware UTC datetimes on both backends.

    SQLite has no time zone type and would hand back naive values; pinning
    UTC here keeps live and replayed rows, and both backends, comparable.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _name() -> sa.types.TypeEngine[str]:
    return sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


def _digest() -> sa.String:
    # "sha512:" + 128 hex characters is the longest digest we accept.
    return sa.String(150)


_json = sa.JSON().with_variant(JSONB(), "postgresql")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The log. seq is assigned by MetadataStore under a lock (see store.py), not
# by an identity column, so that commit order equals seq order.
events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("repository", _name(), nullable=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Index(None, "repository", "seq"),
)

repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("name", _name(), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", _digest(), primary_key=True),
    sa.Column("blake3", _digest(), nullable=False, unique=True),
    sa.Column("sha512", _digest(), nullable=True, unique=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("tier", sa.String(16), nullable=False, server_default="hot"),
    # NULL: no restore asked for; otherwise "pending" or "restored" (cold tiers).
    sa.Column("restore_state", sa.String(16), nullable=True),
    sa.Column("restore_expires_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Last commit, mount or unlink: garbage collection's grace window runs from here.
    sa.Column("touched_at", UTCDateTime, nullable=True),
    sa.CheckConstraint("tier IN ('hot', 'warm', 'cold', 'archive')", name="tier"),
    sa.CheckConstraint(
        "restore_state IS NULL OR restore_state IN ('pending', 'restored')", name="restore_state"
    ),
)

repository_blobs = sa.Table(
    "repository_blobs",
    metadata,
    sa.Column("repository", _name(), sa.ForeignKey("repositories.name"), primary_key=True),
    sa.Column("sha256", _digest(), sa.ForeignKey("blobs.sha256"), primary_key=True),
    # Linked, re-linked, or released by a deleted manifest: GC's grace runs from here.
    sa.Column("linked_at", UTCDateTime, nullable=False),
    sa.Index(None, "sha256"),
)

manifests = sa.Table(
    "manifests",
    metadata,
    sa.Column("repository", _name(), sa.ForeignKey("repositories.name"), primary_key=True),
    sa.Column("digest", _digest(), primary_key=True),
    sa.Column("media_type", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("artifact_type", sa.String(255), nullable=True),
    sa.Column("subject", _digest(), nullable=True),
    sa.Column("annotations", _json, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Pushed, tagged or untagged: the grace for untagged manifests runs from here.
    sa.Column("touched_at", UTCDateTime, nullable=True),
    # Last manifest.pulled event (coalesced; None: never pulled).
    sa.Column("pulled_at", UTCDateTime, nullable=True),
    # A native artifact's retention class and keep-until date (extended by events).
    sa.Column("retention_class", sa.String(64), nullable=True),
    sa.Column("retain_until", UTCDateTime, nullable=True),
    # The referrers API looks manifests up by subject.
    sa.Index(None, "repository", "subject"),
)

manifest_references = sa.Table(
    "manifest_references",
    metadata,
    sa.Column("repository", _name(), primary_key=True),
    sa.Column("manifest_digest", _digest(), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("referenced_digest", _digest(), primary_key=True),
    sa.ForeignKeyConstraint(
        ["repository", "manifest_digest"], ["manifests.repository", "manifests.digest"]
    ),
    sa.CheckConstraint("kind IN ('config', 'layer', 'manifest')", name="kind"),
    # Garbage collection asks "does anything still reference this digest?".
    sa.Index(None, "repository", "referenced_digest"),
    # ... and "does any manifest, in any repository, still name this blob?"
    sa.Index(None, "referenced_digest"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("repository", _name(), primary_key=True),
    sa.Column("tag", _name(), primary_key=True),
    sa.Column("digest", _digest(), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(["repository", "digest"], ["manifests.repository", "manifests.digest"]),
    sa.Index(None, "repository", "digest"),
)

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("repository", _name(), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    # The actor of the upload.started event: only it (or an admin) may use the session.
    # NULL on rows from before revision 0004 until the views are rebuilt from the log.
    sa.Column("opened_by", sa.String(255), nullable=True),
    sa.CheckConstraint("state IN ('active', 'completed', 'cancelled', 'expired')", name="state"),
    sa.Index(None, "state", "updated_at"),
)

# Active legal holds; released ones leave the view (the log keeps them).
holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("repository", _name(), nullable=False),
    # NULL: the whole repository is held.
    sa.Column("digest", _digest(), nullable=True),
    sa.Column("tag", _name(), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("placed_by", sa.String(255), nullable=False),
    sa.Column("placed_at", UTCDateTime, nullable=False),
    sa.Index(None, "repository", "digest"),
)

# Children before parents: the order rebuild_views empties them in.
VIEWS: tuple[sa.Table, ...] = (
    holds,
    tags,
    manifest_references,
    manifests,
    repository_blobs,
    blobs,
    uploads,
    repositories,
)
