"""``/v2/{name}/blobs/uploads/[{upload}]``: monolithic, chunked and mounted blob pushes.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-blobs
The chunk rules are ``registry.service.upload`` (sans I/O); the sessions are
``registry.service.blobs``, shared with the native API.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from oci.digest import Digest
from oci.errors import DigestInvalid, RangeNotSatisfiable
from oci.reference import validate_repository
from registry.http.errors import error_response
from registry.http.request import actor, registry_of, session_owner, upload_of
from registry.http.v2._common import absolute, digest_param, headers, name_of
from registry.service import blobs
from registry.service.upload import range_header

__all__ = ["cancel_upload", "patch_upload", "put_upload", "start_upload", "upload_status"]


def _upload_headers(request: Request, name: str, upload_id: str, offset: int) -> dict[str, str]:
    return headers(
        Location=absolute(request, f"/v2/{name}/blobs/uploads/{quote(upload_id)}"),
        Range=range_header(offset),
        **{"Docker-Upload-UUID": upload_id},
    )


def _blob_created(request: Request, name: str, digest: Digest) -> Response:
    return Response(
        b"",
        201,
        headers=headers(
            Location=absolute(request, f"/v2/{name}/blobs/{digest}"),
            **{"Docker-Content-Digest": str(digest)},
        ),
    )


async def start_upload(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    mount = digest_param(request, "mount")
    from_repo = request.query_params.get("from")
    if mount is not None and from_repo is not None:
        # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#mounting-a-blob-from-another-repository
        source = validate_repository(from_repo)
        if await blobs.mount(registry, name, mount, source, actor=actor(request)) is not None:
            return _blob_created(request, name, mount)
    # A mount without `from` is answered with a fresh session: the spec lets a
    # registry mount from any repository it knows, but doing so would let a
    # client learn of blobs in repositories it may not read.
    digest = digest_param(request)
    if digest is not None:
        await blobs.push_monolithic(
            registry,
            name,
            digest,
            request.stream(),
            request.headers.get("content-length"),
            actor=actor(request),
        )
        return _blob_created(request, name, digest)
    upload_id = await blobs.new_upload(registry, name, actor=actor(request))
    answer = _upload_headers(request, name, upload_id, 0)
    answer["Content-Length"] = "0"
    return Response(b"", 202, headers=answer)


async def upload_status(request: Request) -> Response:
    name = name_of(request)
    upload = await blobs.upload_status(
        registry_of(request),
        name,
        request.path_params["upload"],
        opened_by=session_owner(request),
        actor=actor(request),
    )
    return Response(None, 204, headers=_upload_headers(request, name, upload.id, upload.offset))


async def patch_upload(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    upload = await upload_of(request, name)
    try:
        offset = await blobs.append(
            registry,
            upload,
            request.stream(),
            request.headers.get("content-range"),
            request.headers.get("content-length"),
            actor=actor(request),
        )
    except RangeNotSatisfiable as exc:
        # The 416 names the session as a PATCH answer does (Location, Range,
        # Docker-Upload-UUID); an offset the error carries is the staged one,
        # which the record may lag, so the error's own Range wins.
        context = _upload_headers(request, name, upload.id, upload.offset)
        return error_response(request, exc, context)
    return Response(b"", 202, headers=_upload_headers(request, name, upload.id, offset))


async def put_upload(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    upload = await upload_of(request, name)
    digest = digest_param(request)
    if digest is None:
        raise DigestInvalid("the digest query parameter is required to complete an upload")
    await blobs.finish_upload(
        registry,
        upload,
        digest,
        request.stream(),
        request.headers.get("content-range"),
        request.headers.get("content-length"),
        actor=actor(request),
    )
    return _blob_created(request, name, digest)


async def cancel_upload(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    upload = await upload_of(request, name)
    await blobs.cancel_upload(registry, upload, actor=actor(request))
    return Response(b"", 204, headers=headers())
