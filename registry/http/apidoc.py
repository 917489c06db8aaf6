"""``GET /api/v1/openapi.json``: the one contract of /api/v1/.

The native API, legal holds and retention each declare their section beside
their routes; ``registry.http.openapi`` builds the document from them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.http import holds_openapi, retention_openapi
from registry.http.native import openapi as native_openapi
from registry.http.openapi import build

__all__ = ["OPENAPI", "routes"]

OPENAPI: dict[str, Any] = build(
    "artifact-store native API",
    "1",
    native_openapi.SECTION,
    # Legal holds and retention extension describe themselves beside their routes.
    holds_openapi.SECTION,
    # Retention plans and their application likewise.
    retention_openapi.SECTION,
)


async def openapi(request: Request) -> Response:
    return Response(json.dumps(OPENAPI), 200, media_type="application/json")


routes = [Route("/api/v1/openapi.json", openapi, methods=["GET"])]
