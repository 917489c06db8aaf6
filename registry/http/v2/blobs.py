"""``/v2/{name}/blobs/{digest}``: GET, HEAD (ranged, or redirected) and DELETE.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-blobs
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from oci.digest import Digest
from registry.http.ranges import parse_range
from registry.http.request import actor, registry_of
from registry.http.v2._common import headers, name_of
from registry.service import blobs

__all__ = ["delete_blob", "get_blob"]


async def get_blob(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    digest = Digest.parse(request.path_params["digest"])
    blob = await blobs.require_blob(registry, name, digest)
    answer = headers(
        **{
            "Docker-Content-Digest": str(digest),
            "ETag": f'"{digest}"',
            "Accept-Ranges": "bytes",
        }
    )
    size = blob.size
    if request.method == "HEAD":
        response = Response(None, 200, headers=answer, media_type="application/octet-stream")
        response.headers["Content-Length"] = str(size)
        return response
    wanted = parse_range(request.headers.get("range"), size)
    if wanted is None and registry.settings.storage.redirect_blobs:
        url = await registry.blobs.redirect_url(
            blob.sha256, registry.settings.storage.redirect_expiry_seconds
        )
        if url is not None:
            return RedirectResponse(
                url, 307, headers=headers(**{"Docker-Content-Digest": str(digest)})
            )
    if wanted is None:
        offset, length, status = 0, size, 200
    else:
        offset, length = wanted
        status = 206
        answer["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    chunks = await registry.blobs.read(blob.sha256, offset, length)
    answer["Content-Length"] = str(length)
    return StreamingResponse(chunks, status, headers=answer, media_type="application/octet-stream")


async def delete_blob(request: Request) -> Response:
    name = name_of(request)
    digest = Digest.parse(request.path_params["digest"])
    await blobs.unlink(registry_of(request), name, digest, actor=actor(request))
    return Response(b"", 202, headers=headers())
