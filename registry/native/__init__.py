"""The native artifact API (/api/v1/): artifacts published as OCI manifests.

``registry.native.artifacts`` holds the operations (no HTTP);
``registry.native.routes`` the Starlette routes; ``registry.native.openapi``
the contract served at /api/v1/openapi.json.
"""

from __future__ import annotations

from registry.native.artifacts import (
    Artifact,
    decode_body,
    delete_artifact,
    find_file,
    get_artifact,
    history,
    list_artifacts,
    publish,
)
from registry.native.openapi import OPENAPI
from registry.native.routes import routes
from registry.native.uploads import commit_upload, push_blob

__all__ = [
    "OPENAPI",
    "Artifact",
    "commit_upload",
    "decode_body",
    "delete_artifact",
    "find_file",
    "get_artifact",
    "history",
    "list_artifacts",
    "publish",
    "push_blob",
    "routes",
]
