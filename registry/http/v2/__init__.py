"""The OCI Distribution Spec v1.1 endpoints under /v2/, one module per resource.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#endpoints
Handlers parse the request, call the service layer and shape the response.
They raise spec errors and never build error bodies.
"""

from __future__ import annotations

from starlette.routing import Route

from registry.http.v2.blobs import delete_blob, get_blob
from registry.http.v2.catalog import base, catalog, tags_list
from registry.http.v2.manifests import delete_manifest, get_manifest, put_manifest
from registry.http.v2.referrers import referrers
from registry.http.v2.uploads import (
    cancel_upload,
    patch_upload,
    put_upload,
    start_upload,
    upload_status,
)

__all__ = ["routes"]

# Starlette tries routes in order, so the reads a pull makes most come first.
# No two of these patterns match the same path (each ends in its own fixed
# segment), so the order changes nothing but the time to find a route.
routes = [
    Route("/v2/{name:path}/manifests/{reference}", get_manifest, methods=["GET", "HEAD"]),
    Route("/v2/{name:path}/blobs/{digest}", get_blob, methods=["GET", "HEAD"]),
    Route("/v2/", base, methods=["GET"]),
    Route("/v2/_catalog", catalog, methods=["GET"]),
    Route("/v2/{name:path}/tags/list", tags_list, methods=["GET"]),
    Route("/v2/{name:path}/manifests/{reference}", put_manifest, methods=["PUT"]),
    Route("/v2/{name:path}/manifests/{reference}", delete_manifest, methods=["DELETE"]),
    Route("/v2/{name:path}/referrers/{digest}", referrers, methods=["GET"]),
    Route("/v2/{name:path}/blobs/uploads/", start_upload, methods=["POST"]),
    Route("/v2/{name:path}/blobs/uploads", start_upload, methods=["POST"]),
    Route("/v2/{name:path}/blobs/uploads/{upload}", upload_status, methods=["GET"]),
    Route("/v2/{name:path}/blobs/uploads/{upload}", patch_upload, methods=["PATCH"]),
    Route("/v2/{name:path}/blobs/uploads/{upload}", put_upload, methods=["PUT"]),
    Route("/v2/{name:path}/blobs/uploads/{upload}", cancel_upload, methods=["DELETE"]),
    Route("/v2/{name:path}/blobs/{digest}", delete_blob, methods=["DELETE"]),
]
