"""The OCI Distribution Spec v1.1 endpoints under /v2/.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#endpoints
Handlers parse the request, call the service layer and shape the response.
They raise spec errors and never build error bodies.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from oci.digest import Digest
from oci.errors import (
    DigestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    PaginationNumberInvalid,
    RangeNotSatisfiable,
)
from oci.manifest import Descriptor
from oci.mediatype import OCI_INDEX
from oci.reference import validate_repository
from registry.auth.catalog import visible_catalog
from registry.auth.middleware import principal_of
from registry.http._accept import acceptable
from registry.http._lifecycle import override_of, record_pull
from registry.http._listing import TagListCache
from registry.http._request import actor, read_capped
from registry.http.errors import API_VERSION_HEADERS
from registry.http.ranges import parse_range
from registry.service import blobs, manifests
from registry.service.registry import Registry
from registry.service.upload import range_header

__all__ = ["routes"]


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    raw = request.scope.get("raw_path") or b""
    if b"%2f" in raw.lower():
        # Routing runs on the decoded path, so "a%2Fb" would silently become
        # "a/b": a name in which a "/" is not a component separator is not a
        # valid repository name.
        raise NameInvalid(
            "repository names may not contain an encoded '/' (%2F)", detail={"name": name}
        )
    return validate_repository(name)


def _headers(**extra: str) -> dict[str, str]:
    return {**API_VERSION_HEADERS, **extra}


def _absolute(request: Request, path: str) -> str:
    # distribution answers with absolute URLs built from the request's Host;
    # clients resolve relative ones too, but some older ones do not.
    return str(request.base_url).rstrip("/") + path


def _digest_param(request: Request, key: str = "digest") -> Digest | None:
    value = request.query_params.get(key)
    return None if value is None else Digest.parse(value)


def _pagination(request: Request) -> tuple[int | None, str | None]:
    raw = request.query_params.get("n")
    n: int | None = None
    if raw is not None:
        if not raw.isdigit() or len(raw) > 9:
            raise PaginationNumberInvalid(f"n must be a non-negative integer, got {raw!r}")
        n = int(raw)
    return n, request.query_params.get("last")


def _page(request: Request, items: list[str], n: int | None, key: str) -> Response:
    headers = _headers()
    more = n is not None and len(items) > n
    if n is not None and len(items) > n:
        items = items[:n]
    if n and len(items) == n and more:
        query = urlencode({"n": n, "last": items[-1]})
        headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    document: dict[str, Any] = {key: items}
    if key == "tags":
        document = {"name": request.path_params["name"], "tags": items}
    return Response(json.dumps(document), 200, headers=headers, media_type="application/json")


async def base(request: Request) -> Response:
    return Response("{}", 200, headers=_headers(), media_type="application/json")


async def catalog(request: Request) -> Response:
    n, last = _pagination(request)
    limit = None if n is None else n + 1
    principal = principal_of(request)
    if principal is None:
        names = await _registry(request).meta.catalog(limit, last)
    else:
        meta = _registry(request).meta
        names = await visible_catalog(request.app.state.auth, principal, meta, limit, last)
    return _page(request, names, n, "repositories")


async def tags_list(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    n, last = _pagination(request)
    # Read before the tags: registry/http/_listing.py says why this order is safe.
    seq = await registry.meta.repository_seq(name)
    lists: TagListCache = request.app.state.tag_lists
    cached = lists.get((name, n, last), seq)
    if cached is not None:
        body, link = cached
        headers = _headers() if link is None else _headers(Link=link)
        return Response(body, 200, headers=headers, media_type="application/json")
    tags = await registry.meta.list_tags(name, None if n is None else n + 1, last)
    # An empty page is the one that needs the second query: no tags, or no repository?
    if not tags and not await registry.meta.repository_exists(name):
        raise NameUnknown(f"repository {name} is not known", detail={"name": name})
    response = _page(request, tags, n, "tags")
    lists.put((name, n, last), seq, bytes(response.body), response.headers.get("link"))
    return response


# -- manifests ---------------------------------------------------------------


async def get_manifest(request: Request) -> Response:
    name = _name(request)
    reference = request.path_params["reference"]
    record = await manifests.get_manifest(_registry(request), name, reference)
    if not acceptable(request.headers.getlist("accept"), record.media_type):
        # Negotiation rule: registry/http/_accept.py; distribution answers the same.
        raise ManifestUnknown(
            f"manifest {reference} is a {record.media_type}, which the request's Accept "
            "header does not include",
            detail={"reference": reference, "mediaType": record.media_type},
        )
    digest = str(record.digest)
    headers = _headers(
        **{
            "Docker-Content-Digest": digest,
            "ETag": f'"{digest}"',
            "Content-Length": str(record.size),
        }
    )
    record_pull(request, name, record.digest)
    if request.method == "HEAD":
        return Response(None, 200, headers=headers, media_type=record.media_type)
    return Response(record.body, 200, headers=headers, media_type=record.media_type)


async def put_manifest(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    reference = request.path_params["reference"]
    body = await read_capped(request, registry.settings.server.max_manifest_bytes)
    extra_tags = request.query_params.getlist("tag")
    stored = await manifests.put_manifest(
        registry,
        name,
        reference,
        body,
        request.headers.get("content-type"),
        extra_tags,
        actor=actor(request),
        override=await override_of(request, name),
    )
    headers = _headers(
        Location=_absolute(request, f"/v2/{name}/manifests/{stored.digest}"),
        **{"Docker-Content-Digest": str(stored.digest)},
    )
    if stored.manifest.subject is not None:
        headers["OCI-Subject"] = str(stored.manifest.subject.digest)
    if extra_tags:
        # Every tag the push applied, as the spec asks of a registry that takes ?tag=
        # (end-7b); tags hold no commas, so one comma-separated header says it all.
        # https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pushing-manifests
        headers["OCI-Tag"] = ", ".join(stored.tags)
    return Response(b"", 201, headers=headers)


async def delete_manifest(request: Request) -> Response:
    name = _name(request)
    await manifests.delete_manifest(
        _registry(request),
        name,
        request.path_params["reference"],
        actor=actor(request),
        override=await override_of(request, name),
    )
    return Response(b"", 202, headers=_headers())


async def referrers(request: Request) -> Response:
    name = _name(request)
    subject = Digest.parse(request.path_params["digest"])
    artifact_type = request.query_params.get("artifactType")
    n, last = _pagination(request)
    page = await manifests.referrers(_registry(request), name, subject, artifact_type, n, last)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [_descriptor_json(d) for d in page.descriptors],
    }
    headers = _headers()
    if artifact_type is not None:
        # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
        headers["OCI-Filters-Applied"] = "artifactType"
    if page.next_last is not None:
        query: dict[str, str] = {"last": page.next_last}
        if n is not None:
            query["n"] = str(n)
        if artifact_type is not None:
            query["artifactType"] = artifact_type
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return Response(
        json.dumps(index, separators=(",", ":")), 200, headers=headers, media_type=OCI_INDEX
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


# -- blobs -------------------------------------------------------------------


async def get_blob(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    digest = Digest.parse(request.path_params["digest"])
    blob = await blobs.require_blob(registry, name, digest)
    headers = _headers(
        **{
            "Docker-Content-Digest": str(digest),
            "ETag": f'"{digest}"',
            "Accept-Ranges": "bytes",
        }
    )
    size = blob.size
    if request.method == "HEAD":
        response = Response(None, 200, headers=headers, media_type="application/octet-stream")
        response.headers["Content-Length"] = str(size)
        return response
    wanted = parse_range(request.headers.get("range"), size)
    if wanted is None and registry.settings.storage.redirect_blobs:
        url = await registry.blobs.redirect_url(
            blob.sha256, registry.settings.storage.redirect_expiry_seconds
        )
        if url is not None:
            return RedirectResponse(
                url, 307, headers=_headers(**{"Docker-Content-Digest": str(digest)})
            )
    if wanted is None:
        offset, length, status = 0, size, 200
    else:
        offset, length = wanted
        status = 206
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    chunks = await registry.blobs.read(blob.sha256, offset, length)
    headers["Content-Length"] = str(length)
    return StreamingResponse(chunks, status, headers=headers, media_type="application/octet-stream")


async def delete_blob(request: Request) -> Response:
    name = _name(request)
    await blobs.unlink(
        _registry(request), name, Digest.parse(request.path_params["digest"]), actor=actor(request)
    )
    return Response(b"", 202, headers=_headers())


# -- uploads -----------------------------------------------------------------


def _upload_headers(request: Request, name: str, upload_id: str, offset: int) -> dict[str, str]:
    return _headers(
        Location=_absolute(request, f"/v2/{name}/blobs/uploads/{quote(upload_id)}"),
        Range=range_header(offset),
        **{"Docker-Upload-UUID": upload_id},
    )


def _blob_created(request: Request, name: str, digest: Digest) -> Response:
    return Response(
        b"",
        201,
        headers=_headers(
            Location=_absolute(request, f"/v2/{name}/blobs/{digest}"),
            **{"Docker-Content-Digest": str(digest)},
        ),
    )


async def start_upload(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    mount = _digest_param(request, "mount")
    from_repo = request.query_params.get("from")
    if mount is not None and from_repo is not None:
        # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#mounting-a-blob-from-another-repository
        source = validate_repository(from_repo)
        if await blobs.mount(registry, name, mount, source, actor=actor(request)) is not None:
            return _blob_created(request, name, mount)
    # A mount without `from` is answered with a fresh session: the spec lets a
    # registry mount from any repository it knows, but doing so would let a
    # client learn of blobs in repositories it may not read.
    digest = _digest_param(request)
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
    headers = _upload_headers(request, name, upload_id, 0)
    headers["Content-Length"] = "0"
    return Response(b"", 202, headers=headers)


async def upload_status(request: Request) -> Response:
    name = _name(request)
    upload = await blobs.upload_status(
        _registry(request), name, request.path_params["upload"], actor=actor(request)
    )
    return Response(None, 204, headers=_upload_headers(request, name, upload.id, upload.offset))


async def patch_upload(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    upload = await blobs.get_upload(registry, name, request.path_params["upload"])
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
        # A Range the service set is the staged offset, which the record may lag.
        exc.headers = {**_upload_headers(request, name, upload.id, upload.offset), **exc.headers}
        raise
    return Response(b"", 202, headers=_upload_headers(request, name, upload.id, offset))


async def put_upload(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    upload = await blobs.get_upload(registry, name, request.path_params["upload"])
    digest = _digest_param(request)
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
    name = _name(request)
    registry = _registry(request)
    upload = await blobs.get_upload(registry, name, request.path_params["upload"])
    await blobs.cancel_upload(registry, upload, actor=actor(request))
    return Response(b"", 204, headers=_headers())


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
