"""Legal holds and retention extensions under /api/v1/ (docs/holds.md).

- ``POST /api/v1/holds`` ``{repository, reference?, reason}``: 201 and the hold;
  ``reference`` is a manifest digest, a tag or an artifact version; absent, the
  whole repository is held.
- ``GET /api/v1/holds[?repository=R]``: the active holds; ``GET /api/v1/holds/{id}``.
- ``DELETE /api/v1/holds/{id}`` with a ``reason`` (query or JSON body): 200 and
  the released hold.
- ``POST /api/v1/artifacts/{name}/versions/{version}/retention`` ``{until}``:
  keep a version (or, with a digest in place of the version, a manifest) until
  a later date; never shortened (403 DENIED).

``?repository=R`` on the hold endpoints scopes the request to one repository:
the auth middleware decides before routing and cannot read the body, so a
repository's admins name it in the query, and the handler refuses a body or
hold that names another repository. Without it the request needs a
registry-wide admin. Errors are raised; ``registry.http.errors`` renders them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oci.errors import ManifestTooLarge
from oci.reference import validate_repository
from registry.events.view import rfc3339

# Importing the native routes also registers the "repository" path convertor used below.
from registry.http.native import PREFIX as ARTIFACTS
from registry.http.request import actor, path_for, registry_of
from registry.lifecycle import holds
from registry.lifecycle.holds import RequestInvalid
from registry.meta import HoldRecord

__all__ = ["hold_json", "routes"]

PREFIX = "/api/v1/holds"
MAX_BODY = 64 * 1024


def hold_json(hold: HoldRecord) -> dict[str, Any]:
    return {
        "id": hold.id,
        "repository": hold.repository,
        "digest": hold.digest,
        "tag": hold.tag,
        "reason": hold.reason,
        "placed_by": hold.placed_by,
        "placed_at": rfc3339(hold.placed_at),
    }


async def _body(request: Request, *, required: bool) -> dict[str, Any]:
    """A small JSON object; an absent body is ``{}`` unless ``required``."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ManifestTooLarge(
                f"request body exceeds {MAX_BODY} bytes", detail={"limit": MAX_BODY}
            )
    if not raw.strip() and not required:
        return {}
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestInvalid("the request body must be a JSON object") from None
    if not isinstance(document, dict):
        raise RequestInvalid("the request body must be a JSON object")
    return document


def _text(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise RequestInvalid(f"{name} must be a string", detail={"field": name})
    return value


def _optional_text(document: dict[str, Any], name: str) -> str | None:
    return None if document.get(name) is None else _text(document, name)


def _scope(request: Request) -> str | None:
    """The repository the request was authorized for (``?repository=``), if any."""
    value = request.query_params.get("repository")
    return None if value is None else validate_repository(value)


async def place_hold(request: Request) -> Response:
    scoped = _scope(request)
    document = await _body(request, required=True)
    repository = validate_repository(_text(document, "repository"))
    holds.refuse_mismatch(scoped, repository)
    reference = _optional_text(document, "reference")
    reason = _optional_text(document, "reason") or ""  # absent: the service says it is needed
    hold = await holds.place_hold(
        registry_of(request), repository, reference, reason, actor=actor(request)
    )
    location = path_for(request, f"{PREFIX}/{hold.id}")
    return JSONResponse(hold_json(hold), 201, headers={"Location": location})


async def list_holds(request: Request) -> Response:
    found = await holds.list_holds(registry_of(request), _scope(request))
    return JSONResponse({"holds": [hold_json(hold) for hold in found]})


async def get_hold(request: Request) -> Response:
    hold = await holds.get_hold(registry_of(request), request.path_params["id"], _scope(request))
    return JSONResponse(hold_json(hold))


async def release_hold(request: Request) -> Response:
    scoped = _scope(request)
    reason = request.query_params.get("reason")
    if reason is None:
        reason = _optional_text(await _body(request, required=False), "reason") or ""
    hold = await holds.release_hold(
        registry_of(request),
        request.path_params["id"],
        reason,
        actor=actor(request),
        repository=scoped,
    )
    who = actor(request)
    return JSONResponse({**hold_json(hold), "released": {"reason": reason, "by": who}})


def _until(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise RequestInvalid(
            f"until must be an RFC 3339 time with an offset, got {value!r}",
            detail={"field": "until"},
        )
    return parsed.astimezone(dt.UTC)


async def extend_retention(request: Request) -> Response:
    name = validate_repository(request.path_params["name"])
    version = request.path_params["version"]
    until = _text(await _body(request, required=True), "until")
    done = await holds.extend_retention(
        registry_of(request), name, version, _until(until), actor=actor(request)
    )
    return JSONResponse(
        {
            "name": done.repository,
            "version": version,
            "digest": str(done.digest),
            "until": rfc3339(done.until),
        }
    )


routes = [
    Route(PREFIX, place_hold, methods=["POST"]),
    Route(PREFIX, list_holds, methods=["GET"]),
    Route(f"{PREFIX}/{{id}}", get_hold, methods=["GET"]),
    Route(f"{PREFIX}/{{id}}", release_hold, methods=["DELETE"]),
    Route(
        f"{ARTIFACTS}/{{name:repository}}/versions/{{version}}/retention",
        extend_retention,
        methods=["POST"],
    ),
]
