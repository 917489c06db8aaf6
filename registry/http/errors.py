"""The one place errors become HTTP responses.

Every RegistryError raised below the edge lands here: spec errors become
the distribution spec's envelope ``{"errors":[{"code","message","detail"}]}``
with their status, and the data some of them carry becomes headers
(``headers_of``); operational errors and anything unexpected become a bare
500/503 logged with a request id (``status_of``), so nothing internal leaks
to clients.
https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#error-codes
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from oci.errors import (
    BackendUnavailable,
    Denied,
    ErrorCode,
    RangeNotSatisfiable,
    RegistryError,
    SpecError,
    TooManyRequests,
    Unauthorized,
)
from registry.service.upload import range_header

__all__ = [
    "API_VERSION_HEADERS",
    "error_response",
    "exception_handlers",
    "headers_of",
    "status_of",
]

log = logging.getLogger("artifact_store.http")

API_VERSION_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}


def status_of(exc: RegistryError) -> int:
    """The HTTP status of ``exc``: a spec error's own; 503 for an unreachable backend, else 500."""
    if isinstance(exc, SpecError):
        return exc.status
    return 503 if isinstance(exc, BackendUnavailable) else 500


def headers_of(exc: SpecError) -> dict[str, str]:
    """The response headers the data ``exc`` carries asks for."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized | Denied) and exc.challenge is not None:
        headers["WWW-Authenticate"] = exc.challenge
    elif isinstance(exc, TooManyRequests) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, RangeNotSatisfiable):
        if exc.offset is not None:
            # Where an upload stands, so the client resumes from there.
            headers["Range"] = range_header(exc.offset)
        if exc.size is not None:
            # RFC 9110 section 14.4: an unsatisfied range names the representation's size.
            headers["Content-Range"] = f"bytes */{exc.size}"
    return headers


def error_response(
    request: Request, exc: SpecError, context: dict[str, str] | None = None
) -> Response:
    """The envelope for ``exc``; ``context`` adds the headers of the route's own answer
    (the error's headers win where both name one)."""
    headers = {**(context or {}), **headers_of(exc)}
    return _envelope(request, exc.status, exc.code.value, exc.message, exc.detail, headers)


def _envelope(
    request: Request,
    status: int,
    code: str,
    message: str,
    detail: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": detail}]})
    all_headers = {**API_VERSION_HEADERS, **(headers or {})}
    if request.method == "HEAD":
        # A HEAD response carries no body, but says how long the GET's would be.
        response = Response(None, status, headers=all_headers, media_type="application/json")
        response.headers["Content-Length"] = str(len(body.encode()))
        return response
    return Response(body, status, headers=all_headers, media_type="application/json")


async def _registry_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SpecError):
        return error_response(request, exc)
    assert isinstance(exc, RegistryError)
    request_id = secrets.token_hex(8)
    log.error("request %s %s failed [%s]: %s", request.method, request.url.path, request_id, exc)
    return _envelope(
        request,
        status_of(exc),
        ErrorCode.UNKNOWN.value,
        "internal error",
        {"request_id": request_id},
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _envelope(
            request, 405, ErrorCode.UNSUPPORTED.value, f"{request.method} is not supported here"
        )
    if exc.status_code == 404:
        return _envelope(
            request, 404, ErrorCode.NAME_UNKNOWN.value, f"no such endpoint {request.url.path}"
        )
    return _envelope(request, exc.status_code, ErrorCode.UNKNOWN.value, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = secrets.token_hex(8)
    log.exception("request %s %s crashed [%s]", request.method, request.url.path, request_id)
    return Response("internal server error\n", 500, media_type="text/plain")


exception_handlers: dict[Any, Any] = {
    RegistryError: _registry_error,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
