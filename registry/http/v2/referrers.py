"""``GET /v2/{name}/referrers/{digest}``: the manifests whose subject is the digest.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from oci.digest import Digest
from oci.manifest import Descriptor
from oci.mediatype import OCI_INDEX
from registry.http.request import registry_of
from registry.http.v2._common import headers, name_of, pagination
from registry.service import manifests

__all__ = ["referrers"]


async def referrers(request: Request) -> Response:
    name = name_of(request)
    subject = Digest.parse(request.path_params["digest"])
    artifact_type = request.query_params.get("artifactType")
    n, last = pagination(request)
    page = await manifests.referrers(registry_of(request), name, subject, artifact_type, n, last)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [_descriptor_json(d) for d in page.descriptors],
    }
    answer = headers()
    if artifact_type is not None:
        # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
        answer["OCI-Filters-Applied"] = "artifactType"
    if page.next_last is not None:
        query: dict[str, str] = {"last": page.next_last}
        if n is not None:
            query["n"] = str(n)
        if artifact_type is not None:
            query["artifactType"] = artifact_type
        answer["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return Response(
        json.dumps(index, separators=(",", ":")), 200, headers=answer, media_type=OCI_INDEX
    )


def _descriptor_json(descriptor: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": descriptor.media_type,
        "digest": str(descriptor.digest),
        "size": descriptor.size,
    }
    if descriptor.artifact_type:
        out["artifactType"] = descriptor.artifact_type
    if descriptor.annotations:
        out["annotations"] = dict(descriptor.annotations)
    return out
