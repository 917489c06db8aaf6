"""The storage layer's errors: subclasses of the registry's tree, never wrappers.

    RegistryError
    ├── SpecError
    │   ├── BlobUnknown ─────────── BlobNotFound        no blob under that digest
    │   ├── BlobUploadUnknown ───── UploadNotFound      no such upload session, or an id
    │   │                                               we could never have issued
    │   └── DigestInvalid ───────── DigestMismatch      the bytes do not hash to the
    │                                                   expected digest; nothing was kept
    └── OperationalError
        └── BackendUnavailable ──── StorageUnavailable  the disk or object store failed

Because each one *is* the spec error, the HTTP edge renders a storage error
with no mapping table of its own: ``BlobNotFound`` is BLOB_UNKNOWN (404),
``DigestMismatch`` is DIGEST_INVALID (400). ``StorageUnavailable`` carries no
status; the edge answers every ``BackendUnavailable`` with a bare 503.
Drivers convert their backend's failures (``OSError``, S3 errors) into these
themselves, at the call that failed, so a caller never sees ``OSError``.
"""

from __future__ import annotations

from oci.errors import BackendUnavailable, BlobUnknown, BlobUploadUnknown, DigestInvalid

__all__ = ["BlobNotFound", "DigestMismatch", "StorageUnavailable", "UploadNotFound"]


class BlobNotFound(BlobUnknown):
    """blob unknown to registry"""


class DigestMismatch(DigestInvalid):
    """provided digest did not match uploaded content"""


class UploadNotFound(BlobUploadUnknown):
    """blob upload unknown to registry"""


class StorageUnavailable(BackendUnavailable):
    """the blob store cannot be reached or failed an I/O operation"""
