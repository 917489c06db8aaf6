"""Lifecycle: legal holds, retention dates, pull times, and GC's grace clocks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Adds the ``holds`` view and the columns retention and garbage collection
read: ``blobs.touched_at`` and ``manifests.touched_at`` (grace windows run
from them), ``manifests.pulled_at``, ``retention_class`` and
``retain_until``. Existing rows take their creation time as touched time;
``admin rebuild-views`` recomputes every column from the log. The touched
columns stay nullable so that SQLite can add them without rebuilding tables
that others reference; the projector always sets them.

A frozen snapshot like 0001: types are spelled out here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _name() -> sa.types.TypeEngine[str]:
    return sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("touched_at", _ts(), nullable=True))
    op.execute("UPDATE blobs SET touched_at = created_at")

    with op.batch_alter_table("manifests") as batch:
        batch.add_column(sa.Column("touched_at", _ts(), nullable=True))
        batch.add_column(sa.Column("pulled_at", _ts(), nullable=True))
        batch.add_column(sa.Column("retention_class", sa.String(64), nullable=True))
        batch.add_column(sa.Column("retain_until", _ts(), nullable=True))
    op.execute("UPDATE manifests SET touched_at = created_at")

    op.create_table(
        "holds",
        sa.Column("id", sa.String(64)),
        sa.Column("repository", _name(), nullable=False),
        sa.Column("digest", sa.String(150), nullable=True),
        sa.Column("tag", _name(), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("placed_by", sa.String(255), nullable=False),
        sa.Column("placed_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
    )
    op.create_index("ix_holds_repository_digest", "holds", ["repository", "digest"])


def downgrade() -> None:
    op.drop_index("ix_holds_repository_digest", table_name="holds")
    op.drop_table("holds")
    with op.batch_alter_table("manifests") as batch:
        for column in ("retain_until", "retention_class", "pulled_at", "touched_at"):
            batch.drop_column(column)
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("touched_at")
