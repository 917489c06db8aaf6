"""Per-tenant storage quotas, enforced on blob uploads before bytes are kept.

Usage is the size of the distinct blobs linked into the tenant's
repositories (``AuthStore.usage``). An upload request is refused up front
when usage plus the session's staged bytes plus the declared
``Content-Length`` would pass the quota; a body without a length is counted
as it streams and cut off at the quota. Either way the blob is never
committed, so the quota holds before anything is kept. A push of a blob the
tenant already holds is free. Mounts and manifests are not counted against
it (docs/auth.md).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive

from registry.auth.authority import Authority
from registry.auth.scope import tenant_of
from registry.auth.store import quota_denied

__all__ = ["QuotaGuard", "usage_response"]


class QuotaGuard:
    @staticmethod
    async def check(
        request: Request, authority: Authority, repository: str, receive: Receive
    ) -> Receive:
        """``receive``, wrapped to enforce the quota if the tenant has one."""
        tenant = tenant_of(repository)
        path = request.url.path
        if tenant is None or request.method not in ("POST", "PATCH", "PUT"):
            return receive
        if "/uploads" not in path:
            return receive
        record = await authority.store.get_tenant(tenant)
        if record is None or record.quota_bytes is None:
            return receive
        quota = record.quota_bytes
        digest = request.query_params.get("digest", "")
        if digest.startswith("sha256:") and await authority.store.tenant_references(tenant, digest):
            return receive
        usage = await authority.store.usage(tenant)
        staged = 0
        if request.method != "POST":
            upload_id = path.rstrip("/").rpartition("/")[2]
            upload = await request.app.state.registry.meta.get_upload(repository, upload_id)
            staged = 0 if upload is None else int(upload.offset)
        declared = request.headers.get("content-length", "")
        incoming = int(declared) if declared.isdigit() else 0
        if usage + staged + incoming > quota:
            raise quota_denied(tenant, quota, usage, staged + incoming)
        counted = 0

        async def guarded() -> Message:
            nonlocal counted
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if usage + staged + counted > quota:
                    raise quota_denied(tenant, quota, usage, staged + counted)
            return message

        return guarded


async def usage_response(authority: Authority, tenant: str) -> Response:
    """``GET /api/v1/tenants/{tenant}/usage``: bytes used and the quota, if any."""
    record = await authority.store.get_tenant(tenant)
    document = {
        "tenant": tenant,
        "usage_bytes": await authority.store.usage(tenant),
        "quota_bytes": None if record is None else record.quota_bytes,
    }
    return Response(json.dumps(document), 200, media_type="application/json")
