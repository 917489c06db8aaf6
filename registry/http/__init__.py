"""The HTTP edge: every route, the middleware, the one error renderer (docs/architecture.md).

``create_app`` builds the Starlette application; ``AppState`` is what it
holds for handlers and middleware, read through ``state_of``. Route modules
are one resource each: ``v2`` (the OCI endpoints), ``native`` (/api/v1/
artifacts and upload sessions), ``events``, ``holds``, ``retention``,
``token``, ``health`` and ``apidoc`` (the /api/v1/ OpenAPI document, built by
``openapi``); ``request`` holds what they read off a request, ``errors`` the
mapping of the error tree onto responses.
"""

from __future__ import annotations

from registry.http.app import create_app
from registry.http.state import AppState, state_of

__all__ = ["AppState", "create_app", "state_of"]
