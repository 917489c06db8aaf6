"""Committing a native upload session under one or both of a blob's digests.

The session itself is the /v2/ one (``registry.service.blobs``); the native
API only adds that a client may name the blob by sha256, by blake3 or by
both, and both must hold. The store verifies the first digest while it
commits; the second is compared with what the store computed in the same
pass, and a blob that fails it is unlinked again, so the repository never
gains a blob under a name the client did not mean.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from oci.digest import Digest
from oci.errors import DigestInvalid, Unsupported
from registry.meta.records import UploadRecord
from registry.service import blobs
from registry.service.registry import Registry
from storage.base import BlobInfo

__all__ = ["QueryInvalid", "commit_upload"]


class QueryInvalid(Unsupported):
    """a query parameter is malformed"""

    # UNSUPPORTED is the spec's code for a request the registry will not
    # serve as sent; a malformed parameter is the client's error, hence 400.
    status = 400


async def commit_upload(
    registry: Registry,
    upload: UploadRecord,
    sha256: Digest | None,
    blake3: Digest | None,
    body: AsyncIterable[bytes],
    content_range: str | None,
    content_length: str | None,
    *,
    actor: str,
) -> BlobInfo:
    first = sha256 or blake3
    if first is None:
        raise DigestInvalid("committing an upload needs sha256= or blake3= (or both)")
    info = await blobs.finish_upload(
        registry, upload, first, body, content_range, content_length, actor=actor
    )
    if blake3 is not None and info.blake3 != blake3:
        await blobs.unlink(registry, upload.repository, info.sha256, actor=actor)
        raise DigestInvalid(
            f"content has digest {info.blake3}, not {blake3}",
            detail={"expected": str(blake3), "actual": str(info.blake3)},
        )
    return info
