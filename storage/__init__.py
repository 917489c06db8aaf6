"""The data plane: content-addressed blob stores with streaming, resumable uploads.

Usable without the server::

    from storage import open_store
    store = open_store("file:///var/lib/artifact-store")
    writer = await store.upload("some-id")
    await writer.write(b"hello")
    info = await writer.commit()

The contract is ``BlobStore`` (``storage.base``); drivers live in
``storage.memory``, ``storage.filesystem`` and ``storage.s3``; the shared
driver test suite in ``storage.testing``.
"""

from __future__ import annotations

from storage.base import UPLOAD_ID, BlobInfo, BlobStore, BlobWriter
from storage.errors import BlobNotFound, DigestMismatch, StorageUnavailable, UploadNotFound
from storage.filesystem import FsBlobStore
from storage.memory import MemoryBlobStore
from storage.url import open_store
from storage.verify import VerifyReport, verify

__all__ = [
    "UPLOAD_ID",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobWriter",
    "DigestMismatch",
    "FsBlobStore",
    "MemoryBlobStore",
    "StorageUnavailable",
    "UploadNotFound",
    "VerifyReport",
    "open_store",
    "verify",
]
