"""The registry's errors: one tree, mapped to HTTP once, at the edge.

    RegistryError
    ├── SpecError                    a client-facing error of the distribution spec;
    │   │                            carries its ErrorCode, message, detail and status
    │   ├── BlobUnknown              BLOB_UNKNOWN            404
    │   ├── BlobUploadInvalid        BLOB_UPLOAD_INVALID     400
    │   │   └── RangeNotSatisfiable                          416  (offset, size)
    │   ├── BlobUploadUnknown        BLOB_UPLOAD_UNKNOWN     404
    │   ├── DigestInvalid            DIGEST_INVALID          400
    │   ├── ManifestBlobUnknown      MANIFEST_BLOB_UNKNOWN   400
    │   ├── ManifestInvalid          MANIFEST_INVALID        400
    │   ├── ManifestUnknown          MANIFEST_UNKNOWN        404
    │   ├── NameInvalid              NAME_INVALID            400
    │   ├── NameUnknown              NAME_UNKNOWN            404
    │   ├── SizeInvalid              SIZE_INVALID            400
    │   │   └── ManifestTooLarge                             413
    │   ├── TagInvalid               TAG_INVALID             400
    │   ├── PaginationNumberInvalid  PAGINATION_NUMBER_INVALID 400
    │   ├── Unauthorized             UNAUTHORIZED            401  (challenge)
    │   ├── Denied                   DENIED                  403  (challenge)
    │   ├── Unsupported              UNSUPPORTED             405
    │   └── TooManyRequests          TOOMANYREQUESTS         429  (retry_after)
    └── OperationalError             the server's own trouble: no status, no detail leaks
        ├── BackendUnavailable       a database or object store cannot be reached
        └── Corruption               stored bytes no longer match their digest

The codes and statuses are the table in the distribution spec,
https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#error-codes
(TAG_INVALID and PAGINATION_NUMBER_INVALID are distribution's additions that
clients already understand). Lower layers subclass rather than wrap: storage
raises ``BlobNotFound(BlobUnknown)``, ``DigestMismatch(DigestInvalid)``.

Errors carry facts, not HTTP: the few spec errors whose answer needs more
than the envelope hold it as data (in parentheses above: the auth challenge,
the seconds to wait, the upload offset a client resumes from, the size of a
blob a range missed), and operational errors hold no status at all. The HTTP
edge (``registry.http.errors``) turns both into statuses and headers: 503 for
BackendUnavailable, 500 for any other OperationalError.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

__all__ = [
    "BackendUnavailable",
    "BlobUnknown",
    "BlobUploadInvalid",
    "BlobUploadUnknown",
    "Corruption",
    "Denied",
    "DigestInvalid",
    "ErrorCode",
    "ManifestBlobUnknown",
    "ManifestInvalid",
    "ManifestTooLarge",
    "ManifestUnknown",
    "NameInvalid",
    "NameUnknown",
    "OperationalError",
    "PaginationNumberInvalid",
    "RangeNotSatisfiable",
    "RegistryError",
    "SizeInvalid",
    "SpecError",
    "TagInvalid",
    "TooManyRequests",
    "Unauthorized",
    "Unsupported",
]


class ErrorCode(enum.StrEnum):
    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    SIZE_INVALID = "SIZE_INVALID"
    TAG_INVALID = "TAG_INVALID"
    PAGINATION_NUMBER_INVALID = "PAGINATION_NUMBER_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    UNKNOWN = "UNKNOWN"


class RegistryError(Exception):
    """Root of every error the registry raises on purpose."""

    def __init__(self, message: str = "", *, detail: Any = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        self.message = str(self.args[0])
        self.detail = detail


class SpecError(RegistryError):
    """An error the distribution spec defines; the client sees its code, message and detail."""

    code: ClassVar[ErrorCode] = ErrorCode.UNKNOWN
    status: ClassVar[int] = 400


class BlobUnknown(SpecError):
    """blob unknown to registry"""

    code = ErrorCode.BLOB_UNKNOWN
    status = 404


class BlobUploadInvalid(SpecError):
    """blob upload invalid"""

    code = ErrorCode.BLOB_UPLOAD_INVALID
    status = 400


class RangeNotSatisfiable(BlobUploadInvalid):
    """requested range not satisfiable"""

    status = 416

    def __init__(
        self,
        message: str = "",
        *,
        detail: Any = None,
        offset: int | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        # The bytes an upload holds, where the client resumes (a chunk out of order).
        self.offset = offset
        # The size of the blob a read range missed.
        self.size = size


class BlobUploadUnknown(SpecError):
    """blob upload unknown to registry"""

    code = ErrorCode.BLOB_UPLOAD_UNKNOWN
    status = 404


class DigestInvalid(SpecError):
    """provided digest did not match uploaded content"""

    code = ErrorCode.DIGEST_INVALID
    status = 400


class ManifestBlobUnknown(SpecError):
    """manifest references a manifest or blob unknown to registry"""

    code = ErrorCode.MANIFEST_BLOB_UNKNOWN
    status = 400


class ManifestInvalid(SpecError):
    """manifest invalid"""

    code = ErrorCode.MANIFEST_INVALID
    status = 400


class ManifestUnknown(SpecError):
    """manifest unknown to registry"""

    code = ErrorCode.MANIFEST_UNKNOWN
    status = 404


class NameInvalid(SpecError):
    """invalid repository name"""

    code = ErrorCode.NAME_INVALID
    status = 400


class NameUnknown(SpecError):
    """repository name not known to registry"""

    code = ErrorCode.NAME_UNKNOWN
    status = 404


class SizeInvalid(SpecError):
    """provided length did not match content length"""

    code = ErrorCode.SIZE_INVALID
    status = 400


class ManifestTooLarge(SizeInvalid):
    """manifest exceeds the size limit"""

    status = 413


class TagInvalid(SpecError):
    """manifest tag did not match URI"""

    code = ErrorCode.TAG_INVALID
    status = 400


class PaginationNumberInvalid(SpecError):
    """invalid number of results requested"""

    code = ErrorCode.PAGINATION_NUMBER_INVALID
    status = 400


class Unauthorized(SpecError):
    """authentication required"""

    code = ErrorCode.UNAUTHORIZED
    status = 401

    def __init__(
        self, message: str = "", *, detail: Any = None, challenge: str | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        # How to authenticate (an RFC 7235 challenge: the token realm, service, scope).
        self.challenge = challenge


class Denied(SpecError):
    """requested access to the resource is denied"""

    code = ErrorCode.DENIED
    status = 403

    def __init__(
        self, message: str = "", *, detail: Any = None, challenge: str | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        # Set when a wider token would be allowed (RFC 6750 section 3.1, insufficient_scope).
        self.challenge = challenge


class Unsupported(SpecError):
    """the operation is unsupported"""

    code = ErrorCode.UNSUPPORTED
    status = 405


class TooManyRequests(SpecError):
    """too many requests"""

    code = ErrorCode.TOOMANYREQUESTS
    status = 429

    def __init__(
        self, message: str = "", *, detail: Any = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        # Whole seconds until a request may succeed again.
        self.retry_after = retry_after


class OperationalError(RegistryError):
    """The server's own trouble; clients get a bare status and no detail."""


class BackendUnavailable(OperationalError):
    """a backing service (database, object store) cannot be reached"""


class Corruption(OperationalError):
    """stored content no longer matches its digest"""
