"""What the /v2/ resource modules share: the name, headers, absolute URLs, pagination."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from oci.digest import Digest
from oci.errors import NameInvalid, PaginationNumberInvalid
from oci.reference import validate_repository
from registry.http.errors import API_VERSION_HEADERS
from registry.http.request import url_for

__all__ = ["absolute", "digest_param", "headers", "name_of", "page", "pagination"]


def name_of(request: Request) -> str:
    name: str = request.path_params["name"]
    raw = request.scope.get("raw_path") or b""
    if b"%2f" in raw.lower():
        # Routing runs on the decoded path, so "a%2Fb" would silently become
        # "a/b": a name in which a "/" is not a component separator is not a
        # valid repository name.
        raise NameInvalid(
            "repository names may not contain an encoded '/' (%2F)", detail={"name": name}
        )
    return validate_repository(name)


def headers(**extra: str) -> dict[str, str]:
    return {**API_VERSION_HEADERS, **extra}


def absolute(request: Request, path: str) -> str:
    # distribution answers with absolute URLs built from the request's Host;
    # clients resolve relative ones too, but some older ones do not.
    return url_for(request, path)


def digest_param(request: Request, key: str = "digest") -> Digest | None:
    value = request.query_params.get(key)
    return None if value is None else Digest.parse(value)


def pagination(request: Request) -> tuple[int | None, str | None]:
    raw = request.query_params.get("n")
    n: int | None = None
    if raw is not None:
        if not raw.isdigit() or len(raw) > 9:
            raise PaginationNumberInvalid(f"n must be a non-negative integer, got {raw!r}")
        n = int(raw)
    return n, request.query_params.get("last")


def page(request: Request, items: list[str], n: int | None, key: str) -> Response:
    found = headers()
    more = n is not None and len(items) > n
    if n is not None and len(items) > n:
        items = items[:n]
    if n and len(items) == n and more:
        query = urlencode({"n": n, "last": items[-1]})
        found["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    document: dict[str, Any] = {key: items}
    if key == "tags":
        document = {"name": request.path_params["name"], "tags": items}
    return Response(json.dumps(document), 200, headers=found, media_type="application/json")
