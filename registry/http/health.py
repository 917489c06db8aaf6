"""``GET /health``: the database and the blob store, each checked, and 503 if either fails."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oci.errors import RegistryError
from registry.http.request import registry_of

__all__ = ["health", "routes"]


async def health(request: Request) -> Response:
    registry = registry_of(request)
    checks: dict[str, str] = {}
    for name, check in (("database", registry.meta.check), ("storage", registry.blobs.check)):
        try:
            await check()
            checks[name] = "ok"
        except RegistryError as exc:
            checks[name] = f"error: {exc.message}"
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, 200 if ok else 503)


routes = [Route("/health", health, methods=["GET"])]
