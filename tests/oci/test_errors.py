"""The error tree: every spec error carries the code, message and status of its table row."""

from __future__ import annotations

import inspect

import pytest

import oci.errors
from oci.errors import (
    BackendUnavailable,
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    Corruption,
    Denied,
    DigestInvalid,
    ErrorCode,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    OperationalError,
    PaginationNumberInvalid,
    RangeNotSatisfiable,
    RegistryError,
    SizeInvalid,
    SpecError,
    TagInvalid,
    TooManyRequests,
    Unauthorized,
    Unsupported,
)
from registry.http.errors import headers_of, status_of

# The distribution-spec error table (code-1 .. code-14, with its descriptions),
# https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#error-codes
# plus distribution's TAG_INVALID and PAGINATION_NUMBER_INVALID. The spec table
# has no status column; statuses are the ones the spec prescribes per endpoint
# and distribution registers (registry/api/v2/errors.go), except that
# BLOB_UPLOAD_INVALID is 400 here where distribution registers 404.
SPEC_TABLE: list[tuple[type[SpecError], ErrorCode, int, str]] = [
    (BlobUnknown, ErrorCode.BLOB_UNKNOWN, 404, "blob unknown to registry"),
    (BlobUploadInvalid, ErrorCode.BLOB_UPLOAD_INVALID, 400, "blob upload invalid"),
    (BlobUploadUnknown, ErrorCode.BLOB_UPLOAD_UNKNOWN, 404, "blob upload unknown to registry"),
    (
        DigestInvalid,
        ErrorCode.DIGEST_INVALID,
        400,
        "provided digest did not match uploaded content",
    ),
    (
        ManifestBlobUnknown,
        ErrorCode.MANIFEST_BLOB_UNKNOWN,
        400,
        "manifest references a manifest or blob unknown to registry",
    ),
    (ManifestInvalid, ErrorCode.MANIFEST_INVALID, 400, "manifest invalid"),
    (ManifestUnknown, ErrorCode.MANIFEST_UNKNOWN, 404, "manifest unknown to registry"),
    (NameInvalid, ErrorCode.NAME_INVALID, 400, "invalid repository name"),
    (NameUnknown, ErrorCode.NAME_UNKNOWN, 404, "repository name not known to registry"),
    (SizeInvalid, ErrorCode.SIZE_INVALID, 400, "provided length did not match content length"),
    (Unauthorized, ErrorCode.UNAUTHORIZED, 401, "authentication required"),
    (Denied, ErrorCode.DENIED, 403, "requested access to the resource is denied"),
    (Unsupported, ErrorCode.UNSUPPORTED, 405, "the operation is unsupported"),
    (TooManyRequests, ErrorCode.TOOMANYREQUESTS, 429, "too many requests"),
    (TagInvalid, ErrorCode.TAG_INVALID, 400, "manifest tag did not match URI"),
    (
        PaginationNumberInvalid,
        ErrorCode.PAGINATION_NUMBER_INVALID,
        400,
        "invalid number of results requested",
    ),
    # Refinements: same code, the status the spec asks for in that situation.
    # spec.md "Pushing a blob in chunks": out-of-order chunk -> 416.
    (RangeNotSatisfiable, ErrorCode.BLOB_UPLOAD_INVALID, 416, "requested range not satisfiable"),
    # spec.md "Pushing Manifests": over the size limit -> 413 Payload Too Large.
    (ManifestTooLarge, ErrorCode.SIZE_INVALID, 413, "manifest exceeds the size limit"),
]


@pytest.mark.parametrize(
    ("cls", "code", "status", "message"), SPEC_TABLE, ids=[row[0].__name__ for row in SPEC_TABLE]
)
def test_spec_error_row(cls: type[SpecError], code: ErrorCode, status: int, message: str) -> None:
    error = cls()
    assert error.code is code
    assert error.status == status
    assert error.message == message
    assert str(error) == message
    assert error.detail is None
    assert headers_of(error) == {}
    assert isinstance(error, SpecError)
    assert isinstance(error, RegistryError)


def test_table_covers_every_spec_error() -> None:
    # A new SpecError subclass without a row here fails, so the table stays complete.
    defined = {
        obj
        for _, obj in inspect.getmembers(oci.errors, inspect.isclass)
        if issubclass(obj, SpecError) and obj is not SpecError
    }
    assert defined == {row[0] for row in SPEC_TABLE}


def test_every_spec_code_has_an_exception() -> None:
    covered = {row[1] for row in SPEC_TABLE}
    assert covered == set(ErrorCode) - {ErrorCode.UNKNOWN}


def test_exception_names_follow_spec_codes() -> None:
    # BLOB_UNKNOWN -> BlobUnknown: a reader goes from the spec table to the code.
    for cls, code, _, _ in SPEC_TABLE:
        if cls in (RangeNotSatisfiable, ManifestTooLarge):
            continue
        camel = code.value.title().replace("_", "")
        assert cls.__name__.lower() == camel.lower()


def test_message_detail_and_headers_are_kept() -> None:
    # Errors carry data; the edge renders it as headers (registry.http.errors).
    error = TooManyRequests("slow down", detail={"limit": 10}, retry_after=3)
    assert error.message == "slow down"
    assert error.detail == {"limit": 10}
    assert headers_of(error) == {"Retry-After": "3"}
    unauthorized = Unauthorized(challenge='Bearer realm="x"')
    assert headers_of(unauthorized) == {"WWW-Authenticate": 'Bearer realm="x"'}


@pytest.mark.parametrize(
    ("cls", "status"), [(OperationalError, 500), (BackendUnavailable, 503), (Corruption, 500)]
)
def test_operational_errors(cls: type[OperationalError], status: int) -> None:
    error = cls("database down")
    assert status_of(error) == status
    assert not isinstance(error, SpecError)
    assert isinstance(error, RegistryError)
    assert not hasattr(error, "code")


def test_catching_the_parent_catches_the_refinement() -> None:
    with pytest.raises(BlobUploadInvalid):
        raise RangeNotSatisfiable()
    with pytest.raises(SizeInvalid):
        raise ManifestTooLarge()
