"""The native artifact API (/api/v1/): artifacts published as OCI manifests.

``registry.native.artifacts`` holds the operations (no HTTP) and
``registry.native.uploads`` the native form of upload sessions; the routes
are ``registry.http.native``, their contract ``registry.http.native.openapi``.
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
from registry.native.uploads import commit_upload, push_blob

__all__ = [
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
]
