"""The event log, its views, and the triggers that keep the log append-only.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

A migration is a frozen snapshot: it spells its types out rather than
importing tables.py, which will move on. tests/meta checks that head equals
tables.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _name() -> sa.types.TypeEngine[str]:
    return sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


def _digest() -> sa.String:
    return sa.String(150)


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


# Application code never changes or removes an event (ADR-0002); the
# database refuses it too, so a bug or a stray admin statement cannot
# rewrite history. TRUNCATE is refused on PostgreSQL as well.
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
       BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END""",
)
_POSTGRESQL_TRIGGERS = (
    """CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           RAISE EXCEPTION 'events are append-only: % refused', TG_OP;
       END $$""",
    """CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
       FOR EACH ROW EXECUTE FUNCTION events_append_only()""",
    """CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
       FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger, autoincrement=False),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("repository", _name(), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
    )
    op.create_index("ix_events_repository_seq", "events", ["repository", "seq"])

    op.create_table(
        "repositories",
        sa.Column("name", _name()),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_repositories"),
    )

    op.create_table(
        "blobs",
        sa.Column("sha256", _digest()),
        sa.Column("blake3", _digest(), nullable=False),
        sa.Column("sha512", _digest(), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("tier", sa.String(16), nullable=False, server_default="hot"),
        sa.Column("restore_state", sa.String(16), nullable=True),
        sa.Column("restore_expires_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_blobs"),
        sa.UniqueConstraint("blake3", name="uq_blobs_blake3"),
        sa.UniqueConstraint("sha512", name="uq_blobs_sha512"),
        sa.CheckConstraint("tier IN ('hot', 'warm', 'cold', 'archive')", name="ck_blobs_tier"),
        sa.CheckConstraint(
            "restore_state IS NULL OR restore_state IN ('pending', 'restored')",
            name="ck_blobs_restore_state",
        ),
    )

    op.create_table(
        "repository_blobs",
        sa.Column("repository", _name()),
        sa.Column("sha256", _digest()),
        sa.Column("linked_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("repository", "sha256", name="pk_repository_blobs"),
        sa.ForeignKeyConstraint(
            ["repository"],
            ["repositories.name"],
            name="fk_repository_blobs_repository_repositories",
        ),
        sa.ForeignKeyConstraint(
            ["sha256"], ["blobs.sha256"], name="fk_repository_blobs_sha256_blobs"
        ),
    )
    op.create_index("ix_repository_blobs_sha256", "repository_blobs", ["sha256"])

    op.create_table(
        "manifests",
        sa.Column("repository", _name()),
        sa.Column("digest", _digest()),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("artifact_type", sa.String(255), nullable=True),
        sa.Column("subject", _digest(), nullable=True),
        sa.Column("annotations", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("repository", "digest", name="pk_manifests"),
        sa.ForeignKeyConstraint(
            ["repository"], ["repositories.name"], name="fk_manifests_repository_repositories"
        ),
    )
    op.create_index("ix_manifests_repository_subject", "manifests", ["repository", "subject"])

    op.create_table(
        "manifest_references",
        sa.Column("repository", _name()),
        sa.Column("manifest_digest", _digest()),
        sa.Column("kind", sa.String(16)),
        sa.Column("referenced_digest", _digest()),
        sa.PrimaryKeyConstraint(
            "repository",
            "manifest_digest",
            "kind",
            "referenced_digest",
            name="pk_manifest_references",
        ),
        sa.ForeignKeyConstraint(
            ["repository", "manifest_digest"],
            ["manifests.repository", "manifests.digest"],
            name="fk_manifest_references_repository_manifest_digest_manifests",
        ),
        sa.CheckConstraint(
            "kind IN ('config', 'layer', 'manifest')", name="ck_manifest_references_kind"
        ),
    )
    op.create_index(
        "ix_manifest_references_repository_referenced_digest",
        "manifest_references",
        ["repository", "referenced_digest"],
    )

    op.create_table(
        "tags",
        sa.Column("repository", _name()),
        sa.Column("tag", _name()),
        sa.Column("digest", _digest(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("repository", "tag", name="pk_tags"),
        sa.ForeignKeyConstraint(
            ["repository", "digest"],
            ["manifests.repository", "manifests.digest"],
            name="fk_tags_repository_digest_manifests",
        ),
    )
    op.create_index("ix_tags_repository_digest", "tags", ["repository", "digest"])

    op.create_table(
        "uploads",
        sa.Column("id", sa.String(255)),
        sa.Column("repository", _name(), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
        sa.CheckConstraint(
            "state IN ('active', 'completed', 'cancelled', 'expired')", name="ck_uploads_state"
        ),
    )
    op.create_index("ix_uploads_state_updated_at", "uploads", ["state", "updated_at"])

    dialect = op.get_bind().dialect.name
    for statement in _POSTGRESQL_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_no_truncate ON events")
        op.execute("DROP TRIGGER events_no_update_or_delete ON events")
        op.execute("DROP FUNCTION events_append_only()")
    else:
        op.execute("DROP TRIGGER events_no_delete")
        op.execute("DROP TRIGGER events_no_update")
    for table in (
        "uploads",
        "tags",
        "manifest_references",
        "manifests",
        "repository_blobs",
        "blobs",
        "repositories",
        "events",
    ):
        op.drop_table(table)
