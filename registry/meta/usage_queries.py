"""What a tenant stores, read from the views: the queries behind storage quotas.

A tenant is a top-level namespace: its repositories are those named
``tenant/...``. Usage is computed from the views, which replay from the
event log, so it is always recomputable from the log.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.meta.tables import blobs, manifests, repository_blobs

__all__ = ["linked_blob_size", "tenant_holds_manifest", "tenant_links_blob", "usage_parts"]


def _in_tenant(column: sa.ColumnElement[str], tenant: str) -> sa.ColumnElement[bool]:
    return column.startswith(f"{tenant}/", autoescape=True)


async def usage_parts(conn: AsyncConnection, tenant: str) -> tuple[int, int]:
    """Bytes of the distinct blobs linked into any of the tenant's repositories, and
    of its distinct manifests (by digest: a manifest in two repositories counts once)."""
    linked = sa.select(repository_blobs.c.sha256).where(
        _in_tenant(repository_blobs.c.repository, tenant)
    )
    blob_query = sa.select(sa.func.coalesce(sa.func.sum(blobs.c.size), 0)).where(
        blobs.c.sha256.in_(linked)
    )
    distinct = (
        sa.select(sa.func.max(manifests.c.size).label("size"))
        .where(_in_tenant(manifests.c.repository, tenant))
        .group_by(manifests.c.digest)
        .subquery()
    )
    manifest_query = sa.select(sa.func.coalesce(sa.func.sum(distinct.c.size), 0))
    blob_bytes = int((await conn.execute(blob_query)).scalar_one())
    manifest_bytes = int((await conn.execute(manifest_query)).scalar_one())
    return blob_bytes, manifest_bytes


async def tenant_links_blob(conn: AsyncConnection, tenant: str, sha256: str) -> bool:
    """Whether a repository of the tenant links the blob ``sha256``."""
    query = sa.select(sa.literal(1)).where(
        repository_blobs.c.sha256 == sha256, _in_tenant(repository_blobs.c.repository, tenant)
    )
    return (await conn.execute(query.limit(1))).first() is not None


async def tenant_holds_manifest(conn: AsyncConnection, tenant: str, digest: str) -> bool:
    """Whether a repository of the tenant holds the manifest ``digest``."""
    query = sa.select(sa.literal(1)).where(
        manifests.c.digest == digest, _in_tenant(manifests.c.repository, tenant)
    )
    return (await conn.execute(query.limit(1))).first() is not None


async def linked_blob_size(
    conn: AsyncConnection, repository: str, digest: str
) -> tuple[str, int] | None:
    """(sha256, size) of the blob ``digest`` names (by any of its digests), if
    ``repository`` links it."""
    algorithm = digest.partition(":")[0]
    column = {"sha256": blobs.c.sha256, "blake3": blobs.c.blake3, "sha512": blobs.c.sha512}
    if algorithm not in column:
        return None
    query = (
        sa.select(blobs.c.sha256, blobs.c.size)
        .join(repository_blobs, repository_blobs.c.sha256 == blobs.c.sha256)
        .where(repository_blobs.c.repository == repository, column[algorithm] == digest)
    )
    row = (await conn.execute(query.limit(1))).first()
    return None if row is None else (str(row.sha256), int(row.size))
