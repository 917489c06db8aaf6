"""Whether the blob store holds a blob in full: the check ``commit_blob`` runs under the lock."""

from __future__ import annotations

from oci.digest import Digest
from storage.base import BlobInfo, BlobStore
from storage.errors import BlobNotFound

__all__ = ["stored"]


async def stored(store: BlobStore, blob: BlobInfo, sha512: Digest | None) -> bool:
    """True if ``blob`` resolves by its blake3 name (and ``sha512``, if given) to its bytes.

    Resolving the blake3 name checks the alias and the bytes behind it in one
    call, so a blob whose bytes garbage collection deleted, or whose aliases
    a delete racing the commit removed, reads as absent (ADR-0007) and the
    upload is refused rather than recorded over missing bytes.
    """
    for name in (blob.blake3, sha512):
        if name is None:
            continue
        try:
            found = await store.stat(name)
        except BlobNotFound:
            return False
        if found.sha256 != blob.sha256:
            return False
    return True
