"""Re-hash every blob and report those whose bytes no longer match their names.

Disks rot and operators copy directories by hand; the store's names (sha256,
blake3) are claims about bytes that only a full read can check. ``verify``
streams each blob once through both hashes, so it needs memory for one chunk
whatever the blob sizes, and reports:

- corrupt: the bytes hash to something else than the blob's sha256 or blake3,
  or their length differs from the recorded size.

With ``repair=True`` corrupt blobs are deleted once the scan is over: the
bytes are wrong beyond recovery, and serving them under a digest they do not
have is worse than a 404, which a client heals by pushing again. The caller
(the CLI) is expected to tell the control plane which blobs went away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from storage.base import BlobInfo, BlobStore
from storage.errors import BlobNotFound
from storage.hashing import ContentHasher

__all__ = ["VerifyReport", "verify"]


@dataclass(slots=True)
class VerifyReport:
    checked: int = 0
    bytes: int = 0
    corrupt: list[BlobInfo] = field(default_factory=list)
    removed: list[BlobInfo] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.corrupt


async def _intact(store: BlobStore, info: BlobInfo) -> bool | None:
    """Whether the blob's bytes match its names; None if it was deleted meanwhile."""
    hashes = ContentHasher()
    try:
        async for chunk in await store.read(info.sha256):
            await hashes.update(chunk)
    except BlobNotFound:
        return None
    return (
        hashes.size == info.size
        and hashes.sha256() == info.sha256
        and hashes.blake3() == info.blake3
    )


async def verify(
    store: BlobStore,
    repair: bool = False,
    progress: Callable[[BlobInfo], object] | None = None,
) -> VerifyReport:
    """Re-hash every blob of ``store``; ``progress`` is called after each one."""
    report = VerifyReport()
    async for info in store.list():
        intact = await _intact(store, info)
        if intact is None:
            continue
        report.checked += 1
        report.bytes += info.size
        if not intact:
            report.corrupt.append(info)
        if progress is not None:
            progress(info)
    if repair:
        for info in report.corrupt:
            try:
                await store.delete(info.sha256)
            except BlobNotFound:
                continue
            report.removed.append(info)
    return report
