"""An index on manifest_references.referenced_digest alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

Garbage collection keeps a blob's bytes while a manifest in any repository
names it, even one whose own link to the blob was deleted; that question
has no repository to lead the existing (repository, referenced_digest)
index with.
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index(
        "ix_manifest_references_referenced_digest", "manifest_references", ["referenced_digest"]
    )


def downgrade() -> None:
    op.drop_index("ix_manifest_references_referenced_digest", table_name="manifest_references")
