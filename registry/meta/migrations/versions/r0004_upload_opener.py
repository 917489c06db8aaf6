"""Upload sessions remember who opened them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08

Adds ``uploads.opened_by``, the actor of the session's ``upload.started``
event: only that principal (or an admin) may continue, query or cancel the
session. Rows from before this revision hold NULL, which only an admin may
use; ``admin rebuild-views`` fills the column from the log. Sessions are
short-lived, so a client caught mid-upload by the upgrade starts a new one.

A frozen snapshot like 0001: types are spelled out here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("opened_by", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("opened_by")
