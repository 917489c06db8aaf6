"""Auth: users, API tokens, policies, signing keys, tenants, rate buckets, audit.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

A frozen snapshot like 0001: types are spelled out here, and tests/meta
checks that head equals the declared tables (registry/auth/tables.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _name() -> sa.types.TypeEngine[str]:
    return sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "auth_users",
        sa.Column("name", _name(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tenant", _name(), nullable=True),
        sa.Column("roles", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("credentials_changed_at", _ts(), nullable=False),
        sa.CheckConstraint("kind IN ('user', 'robot')", name="ck_auth_users_kind"),
        sa.PrimaryKeyConstraint("name", name="pk_auth_users"),
    )
    op.create_table(
        "auth_api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user", _name(), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user"],
            ["auth_users.name"],
            name="fk_auth_api_tokens_user_auth_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_auth_api_tokens"),
    )
    op.create_index("ix_auth_api_tokens_user", "auth_api_tokens", ["user"])
    op.create_table(
        "auth_policies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("pattern", sa.String(255), nullable=False),
        sa.Column("actions", sa.String(64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_policies"),
        sa.UniqueConstraint("subject", "pattern", name="uq_auth_policies_subject_pattern"),
    )
    op.create_table(
        "auth_signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_pem", sa.LargeBinary, nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("retired_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_auth_signing_keys"),
    )
    op.create_table(
        "auth_tenants",
        sa.Column("name", _name(), primary_key=True),
        sa.Column("quota_bytes", sa.BigInteger, nullable=True),
        sa.Column("rate_per_second", sa.Float, nullable=True),
        sa.Column("burst", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_auth_tenants"),
    )
    op.create_table(
        "auth_buckets",
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_auth_buckets"),
    )
    op.create_table(
        "auth_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", _ts(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_audit"),
    )


def downgrade() -> None:
    for table in (
        "auth_audit",
        "auth_buckets",
        "auth_tenants",
        "auth_signing_keys",
        "auth_policies",
        "auth_api_tokens",
        "auth_users",
    ):
        op.drop_table(table)
