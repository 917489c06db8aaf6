"""The one place errors become HTTP responses.

Every RegistryError raised below the edge lands in ``render``: spec errors
become the distribution spec's envelope
``{"errors":[{"code","message","detail"}]}`` with their status; operational
errors and anything unexpected become a bare 500/503 logged with a request id,
so nothing internal leaks to clients.
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

from oci.errors import ErrorCode, OperationalError, RegistryError, SpecError

__all__ = ["API_VERSION_HEADERS", "error_response", "exception_handlers"]

log = logging.getLogger("artifact_store.http")

API_VERSION_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}


def error_response(
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
        return error_response(
            request, exc.status, exc.code.value, exc.message, exc.detail, exc.headers
        )
    assert isinstance(exc, RegistryError)
    request_id = secrets.token_hex(8)
    log.error("request %s %s failed [%s]: %s", request.method, request.url.path, request_id, exc)
    status = exc.status if isinstance(exc, OperationalError) else 500
    return error_response(
        request, status, ErrorCode.UNKNOWN.value, "internal error", {"request_id": request_id}
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(
            request, 405, ErrorCode.UNSUPPORTED.value, f"{request.method} is not supported here"
        )
    if exc.status_code == 404:
        return error_response(
            request, 404, ErrorCode.NAME_UNKNOWN.value, f"no such endpoint {request.url.path}"
        )
    return error_response(request, exc.status_code, ErrorCode.UNKNOWN.value, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = secrets.token_hex(8)
    log.exception("request %s %s crashed [%s]", request.method, request.url.path, request_id)
    return Response("internal server error\n", 500, media_type="text/plain")


exception_handlers: dict[Any, Any] = {
    RegistryError: _registry_error,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
