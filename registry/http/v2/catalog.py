"""``GET /v2/``, ``GET /v2/_catalog`` and ``GET /v2/{name}/tags/list``.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#content-discovery
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from oci.errors import NameUnknown
from registry.auth.catalog import visible_catalog
from registry.http.request import authority_of, principal_of, registry_of
from registry.http.state import state_of
from registry.http.v2._common import headers, name_of, page, pagination

__all__ = ["base", "catalog", "tags_list"]


async def base(request: Request) -> Response:
    return Response("{}", 200, headers=headers(), media_type="application/json")


async def catalog(request: Request) -> Response:
    n, last = pagination(request)
    limit = None if n is None else n + 1
    principal = principal_of(request)
    if principal is None:
        names = await registry_of(request).meta.catalog(limit, last)
    else:
        meta = registry_of(request).meta
        names = await visible_catalog(authority_of(request), principal, meta, limit, last)
    return page(request, names, n, "repositories")


async def tags_list(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
    n, last = pagination(request)
    # Read before the tags: registry/http/_listing.py says why this order is safe.
    seq = await registry.meta.repository_seq(name)
    lists = state_of(request).tag_lists
    cached = lists.get((name, n, last), seq)
    if cached is not None:
        body, link = cached
        found = headers() if link is None else headers(Link=link)
        return Response(body, 200, headers=found, media_type="application/json")
    tags = await registry.meta.list_tags(name, None if n is None else n + 1, last)
    # An empty page is the one that needs the second query: no tags, or no repository?
    if not tags and not await registry.meta.repository_exists(name):
        raise NameUnknown(f"repository {name} is not known", detail={"name": name})
    response = page(request, tags, n, "tags")
    lists.put((name, n, last), seq, bytes(response.body), response.headers.get("link"))
    return response
