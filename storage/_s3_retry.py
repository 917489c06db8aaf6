"""Retries and error conversion for the S3 driver (``storage.s3``).

Retries live here alone (``with_retries``, behind ``S3BlobStore._call``):
throttling (SlowDown, 429/503), other 5xx, timeouts and dropped connections
are retried with jittered exponential backoff. Every call the driver makes is
idempotent (PUTs to fixed keys, GET, HEAD, LIST, DELETE, a compose that
rewrites the same bytes), so each is safe to repeat. What is still failing
afterwards becomes ``StorageUnavailable``; a missing key becomes ``Missing``,
for the caller to decide what absence means.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from storage.errors import StorageUnavailable

__all__ = ["ATTEMPTS", "BACKOFF_BASE", "MISSING_CODES", "Missing", "with_retries"]

_T = TypeVar("_T")

ATTEMPTS = 6
BACKOFF_BASE = 0.1
_BACKOFF_CAP = 5.0
_RETRY_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
     "ServiceUnavailable", "InternalError", "RequestTimeout", "OperationAborted"}
)  # fmt: skip
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchUpload"})


class Missing(Exception):
    """The key does not exist (NoSuchKey); callers decide what absence means."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in _RETRY_CODES or exc.response.status in _RETRY_STATUS
    if isinstance(exc, ServerError):
        return exc.status_code in _RETRY_STATUS
    if isinstance(exc, InvalidResponseError):  # a proxy's HTML 502/503 page
        return getattr(exc, "_code", 0) in _RETRY_STATUS
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


def _translate(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, S3Error) and exc.code in MISSING_CODES:
        return Missing(what)
    detail = exc.code if isinstance(exc, S3Error) else type(exc).__name__
    if isinstance(exc, ServerError):  # an error without an XML body, e.g. to HEAD
        detail = f"HTTP {exc.status_code}"
    return StorageUnavailable(f"object store: {what} failed ({detail})")


async def with_retries(fn: Callable[[], _T], what: str) -> _T:
    """Run the blocking SDK call ``fn`` in a worker thread, retrying what may succeed later.

    ``what`` names the request in the error that is raised when it fails for good.
    """
    delay = BACKOFF_BASE
    for attempt in range(ATTEMPTS):
        try:
            return await anyio.to_thread.run_sync(fn)
        except Exception as exc:
            if attempt == ATTEMPTS - 1 or not _retryable(exc):
                raise _translate(exc, what) from exc
        await anyio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, _BACKOFF_CAP)
    raise AssertionError("unreachable")
