"""The native API under /api/v1/artifacts/: upload sessions, artifacts, files, history.

``uploads`` serves the upload sessions (one mechanism with /v2/ uploads),
``artifacts`` the versions, their files and the history; ``openapi`` is
their part of the /api/v1/ contract (``registry.http.apidoc``). Importing
this package registers the ``repository`` path convertor its routes use.
"""

from __future__ import annotations

from registry.http.native import artifacts, uploads
from registry.http.native._common import PREFIX

__all__ = ["PREFIX", "routes"]

routes = [*uploads.routes, *artifacts.routes]
