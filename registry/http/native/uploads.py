"""Native upload sessions: ``/api/v1/artifacts/{name}/uploads[/{upload}]``.

The same session mechanism as /v2/ blob uploads (``registry.service.blobs``),
answered in JSON and committed under sha256 and/or blake3 digests
(``registry.native.uploads``).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.http.native._common import PREFIX, digest_param, json_response, name_of
from registry.http.request import actor, path_for, registry_of, session_owner, upload_of
from registry.native.uploads import commit_upload, push_blob
from registry.service import blobs
from storage.base import BlobInfo

__all__ = ["routes"]


def _upload_json(request: Request, name: str, upload_id: str, offset: int) -> Response:
    location = path_for(request, f"{PREFIX}/{name}/uploads/{quote(upload_id)}")
    return json_response(
        {"id": upload_id, "offset": offset},
        headers={"Location": location, "Upload-Offset": str(offset)},
    )


async def create_upload(request: Request) -> Response:
    """Open a session; with sha256= and/or blake3= the body is the whole blob, committed at once
    (one request and one event instead of three of each: what makes many small files cheap)."""
    name = name_of(request)
    registry = registry_of(request)
    sha256, blake3 = digest_param(request, "sha256"), digest_param(request, "blake3")
    if sha256 is None and blake3 is None:
        upload_id = await blobs.new_upload(registry, name, actor=actor(request))
        response = _upload_json(request, name, upload_id, 0)
        response.status_code = 201
        return response
    info, created = await push_blob(
        registry, name, sha256, blake3, request.stream(),
        request.headers.get("content-length"), actor=actor(request),
    )  # fmt: skip
    return _committed(info, 201 if created else 200)


def _committed(info: BlobInfo, status: int = 201) -> Response:
    document = {"sha256": str(info.sha256), "blake3": str(info.blake3), "size": info.size}
    return json_response(document, status)


async def upload_status(request: Request) -> Response:
    name = name_of(request)
    upload = await blobs.upload_status(
        registry_of(request),
        name,
        request.path_params["upload"],
        opened_by=session_owner(request),
        actor=actor(request),
    )
    return _upload_json(request, name, upload.id, upload.offset)


async def append_upload(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    upload = await upload_of(request, name)
    offset = await blobs.append(
        registry,
        upload,
        request.stream(),
        request.headers.get("content-range"),
        request.headers.get("content-length"),
        actor=actor(request),
    )
    return _upload_json(request, name, upload.id, offset)


async def finish_upload(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    sha256, blake3 = digest_param(request, "sha256"), digest_param(request, "blake3")
    upload = await upload_of(request, name)
    info = await commit_upload(
        registry,
        upload,
        sha256,
        blake3,
        request.stream(),
        request.headers.get("content-range"),
        request.headers.get("content-length"),
        actor=actor(request),
    )
    return _committed(info)


async def cancel_upload(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    upload = await upload_of(request, name)
    await blobs.cancel_upload(registry, upload, actor=actor(request))
    return Response(None, 204)


_N = "{name:repository}"
routes = [
    Route(f"{PREFIX}/{_N}/uploads", create_upload, methods=["POST"]),
    Route(f"{PREFIX}/{_N}/uploads/{{upload}}", upload_status, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/uploads/{{upload}}", append_upload, methods=["PATCH"]),
    Route(f"{PREFIX}/{_N}/uploads/{{upload}}", finish_upload, methods=["PUT"]),
    Route(f"{PREFIX}/{_N}/uploads/{{upload}}", cancel_upload, methods=["DELETE"]),
]
