"""The data plane: content-addressed blob stores with streaming, resumable uploads.

Usable without the server::

    from storage import open_store
    store = open_store("file:///var/lib/artifact-store")
    writer = await store.upload("some-id")
    await writer.write(b"hello")
    info = await writer.commit()

The contract is ``BlobStore`` (``storage.base``); drivers live in
``storage.memory``, ``storage.filesystem`` and ``storage.s3``; the shared
driver test suite in ``storage.testing``. ``ContentHasher`` (``storage.hashing``)
is the one-pass sha256 + blake3 every driver writes with, for callers that hash
a stream the same way.
"""

from __future__ import annotations

from storage.base import UPLOAD_ID, BlobInfo, BlobStore, BlobWriter
from storage.errors import BlobNotFound, DigestMismatch, StorageUnavailable, UploadNotFound
from storage.filesystem import FsBlobStore
from storage.hashing import ContentHasher
from storage.memory import MemoryBlobStore
from storage.url import open_store
from storage.verify import VerifyReport, verify

__all__ = [
    "UPLOAD_ID",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobWriter",
    "ContentHasher",
    "DigestMismatch",
    "FsBlobStore",
    "MemoryBlobStore",
    "StorageUnavailable",
    "UploadNotFound",
    "VerifyReport",
    "open_store",
    "verify",
]
