"""``/v2/{name}/manifests/{reference}``: GET, HEAD, PUT and DELETE.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from oci.errors import ManifestUnknown
from registry.http._accept import acceptable
from registry.http.request import actor, override_of, read_capped, record_pull, registry_of
from registry.http.v2._common import absolute, headers, name_of
from registry.service import manifests

__all__ = ["delete_manifest", "get_manifest", "put_manifest"]


async def get_manifest(request: Request) -> Response:
    name = name_of(request)
    reference = request.path_params["reference"]
    record = await manifests.get_manifest(registry_of(request), name, reference)
    if not acceptable(request.headers.getlist("accept"), record.media_type):
        # Negotiation rule: registry/http/_accept.py; distribution answers the same.
        raise ManifestUnknown(
            f"manifest {reference} is a {record.media_type}, which the request's Accept "
            "header does not include",
            detail={"reference": reference, "mediaType": record.media_type},
        )
    digest = str(record.digest)
    found = headers(
        **{
            "Docker-Content-Digest": digest,
            "ETag": f'"{digest}"',
            "Content-Length": str(record.size),
        }
    )
    record_pull(request, name, record.digest)
    if request.method == "HEAD":
        return Response(None, 200, headers=found, media_type=record.media_type)
    return Response(record.body, 200, headers=found, media_type=record.media_type)


async def put_manifest(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
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
    answer = headers(
        Location=absolute(request, f"/v2/{name}/manifests/{stored.digest}"),
        **{"Docker-Content-Digest": str(stored.digest)},
    )
    if stored.manifest.subject is not None:
        answer["OCI-Subject"] = str(stored.manifest.subject.digest)
    if extra_tags:
        # Every tag the push applied, as the spec asks of a registry that takes ?tag=
        # (end-7b); tags hold no commas, so one comma-separated header says it all.
        # https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pushing-manifests
        answer["OCI-Tag"] = ", ".join(stored.tags)
    return Response(b"", 201, headers=answer)


async def delete_manifest(request: Request) -> Response:
    name = name_of(request)
    await manifests.delete_manifest(
        registry_of(request),
        name,
        request.path_params["reference"],
        actor=actor(request),
        override=await override_of(request, name),
    )
    return Response(b"", 202, headers=headers())
