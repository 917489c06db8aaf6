"""What MetadataStore's reads return: plain frozen records, no rows or sessions leak out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from oci.digest import Digest
from registry.meta.events import Event

__all__ = ["BlobRecord", "EventRecord", "HoldRecord", "ManifestRecord", "UploadRecord"]


@dataclass(frozen=True, slots=True)
class BlobRecord:
    sha256: Digest
    blake3: Digest
    sha512: Digest | None
    size: int
    # hot, warm, cold or archive; only hot and warm blobs can be read at once.
    tier: str
    # None, "pending" or "restored": where a restore from a cold tier stands.
    restore_state: str | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> BlobRecord:
        return cls(
            sha256=Digest.parse(row.sha256),
            blake3=Digest.parse(row.blake3),
            sha512=None if row.sha512 is None else Digest.parse(row.sha512),
            size=row.size,
            tier=row.tier,
            restore_state=row.restore_state,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    repository: str
    digest: Digest
    media_type: str
    size: int
    body: bytes
    artifact_type: str | None
    subject: Digest | None
    annotations: dict[str, str]
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> ManifestRecord:
        return cls(
            repository=row.repository,
            digest=Digest.parse(row.digest),
            media_type=row.media_type,
            size=row.size,
            body=bytes(row.body),
            artifact_type=row.artifact_type,
            subject=None if row.subject is None else Digest.parse(row.subject),
            annotations=dict(row.annotations),
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    repository: str
    started_at: dt.datetime
    updated_at: dt.datetime
    offset: int
    # active, completed, cancelled or expired
    state: str
    # who opened the session (the actor of its upload.started); None: not known
    opened_by: str | None = None

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> UploadRecord:
        return cls(
            id=row.id,
            repository=row.repository,
            started_at=row.started_at,
            updated_at=row.updated_at,
            offset=row.offset,
            state=row.state,
            opened_by=row.opened_by,
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the log; ``event`` is the decoded payload, ``type`` its ``TYPE``."""

    seq: int
    ts: dt.datetime
    actor: str
    repository: str | None
    type: str
    event: Event


@dataclass(frozen=True, slots=True)
class HoldRecord:
    id: str
    repository: str
    digest: str | None
    tag: str | None
    reason: str
    placed_by: str
    placed_at: dt.datetime
