"""Per-tenant storage quotas, enforced on every push before anything is kept.

Usage is what the tenant stores: the distinct blobs linked into its
repositories plus its distinct manifests (``AuthStore.usage_parts``), read
from the views, so it replays from the event log. What a request would add
is weighed before the route runs, and a request that would take the tenant
past its quota is answered 403 DENIED with a quota detail instead:

- a blob upload (``/v2/…/blobs/uploads``, ``/api/v1/artifacts/…/uploads``):
  usage plus the session's staged bytes plus the declared
  ``Content-Length``; a body without a length is counted as it streams and
  cut off at the quota. The blob is never committed either way;
- a cross-repository mount (``POST …/blobs/uploads/?mount=D&from=R``): the
  size of the blob ``R`` links, so no link is made;
- a manifest (``PUT /v2/…/manifests/REF``): its body, read here (manifests
  are capped at ``max_manifest_bytes``) and handed to the route unchanged;
- a native publish (``PUT /api/v1/artifacts/…/versions/V``): the config
  blob (the canonical CBOR) and the OCI manifest it becomes, both computed
  from the body exactly as the route will.

Bytes the tenant already holds are free: a blob it links (a re-push, a
mount of a blob another of its repositories has) and a manifest it holds
(a re-tag). Concurrent pushes each see the usage before the others land,
so a burst can pass the quota by what was in flight; nothing is half-kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import Message, Receive

from oci import native
from oci.digest import Digest
from oci.errors import RegistryError
from oci.mediatype import base_type
from registry.auth.authority import Authority
from registry.auth.scope import tenant_of
from registry.auth.store import AuthStore, quota_denied
from registry.meta import MetadataStore

__all__ = ["QuotaGuard", "usage_document"]

_V2_MANIFEST = re.compile(r"^/v2/.+/manifests/(?P<reference>[^/]+)$")
_NATIVE_VERSION = re.compile(r"^/api/v1/artifacts/.+/versions/[^/]+$")


async def usage_document(store: AuthStore, tenant: str) -> dict[str, object]:
    """What ``GET /api/v1/tenants/{tenant}/usage`` and ``admin tenant usage`` show."""
    record = await store.get_tenant(tenant)
    blob_bytes, manifest_bytes = await store.usage_parts(tenant)
    return {
        "tenant": tenant,
        "usage_bytes": blob_bytes + manifest_bytes,
        "blob_bytes": blob_bytes,
        "manifest_bytes": manifest_bytes,
        "quota_bytes": None if record is None else record.quota_bytes,
    }


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first hands back ``messages`` already read from it."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _read_body(receive: Receive, cap: int) -> tuple[bytes | None, Receive]:
    """The whole body if it is at most ``cap`` bytes (else None), and a receive that replays it."""
    messages: list[Message] = []
    body = bytearray()
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, _replay(messages, receive)
        body += message.get("body", b"")
        if len(body) > cap:
            return None, _replay(messages, receive)  # the route refuses it (413)
        if not message.get("more_body", False):
            return bytes(body), _replay(messages, receive)


def _digest_of(body: bytes, reference: str) -> str:
    """The digest a manifest PUT stores ``body`` under (the reference's algorithm if it is one)."""
    algorithm = reference.partition(":")[0] if ":" in reference else "sha256"
    try:
        return str(Digest.compute(body, algorithm))
    except (KeyError, ValueError, RegistryError):
        return str(Digest.compute(body))


def _native_parts(body: bytes, content_type: str | None) -> tuple[bytes, bytes] | None:
    """(config CBOR, OCI manifest) a native publish of ``body`` stores; None if it is malformed
    (the route then refuses it, and storing nothing needs no quota)."""
    kind = base_type(content_type) or native.NATIVE_MANIFEST_CBOR
    try:
        if kind == native.NATIVE_MANIFEST_CBOR:
            manifest = native.decode_cbor(body)
        elif kind in (native.NATIVE_MANIFEST_JSON, "application/json"):
            manifest = native.from_json(json.loads(body))
        else:
            return None
        cbor = native.encode_cbor(manifest)
        return cbor, native.to_oci_manifest(manifest, Digest.compute(cbor), len(cbor))
    except (RegistryError, ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True, slots=True)
class _Quota:
    store: AuthStore
    tenant: str
    quota: int

    async def admit(self, incoming: int, usage: int | None = None) -> int:
        """The tenant's usage; DENIED if ``incoming`` more bytes would pass the quota."""
        used = await self.store.usage(self.tenant) if usage is None else usage
        if used + incoming > self.quota:
            raise quota_denied(self.tenant, self.quota, used, incoming)
        return used

    async def blob_cost(self, sha256: str, size: int) -> int:
        return 0 if await self.store.tenant_references(self.tenant, sha256) else size

    async def manifest_cost(self, digest: str, size: int) -> int:
        return 0 if await self.store.tenant_holds_manifest(self.tenant, digest) else size


class QuotaGuard:
    @staticmethod
    async def check(
        request: Request,
        authority: Authority,
        meta: MetadataStore,
        manifest_cap: int,
        repository: str,
        receive: Receive,
    ) -> Receive:
        """``receive``, wrapped to enforce the quota if the tenant has one.

        ``meta`` finds an upload session's staged bytes; ``manifest_cap`` is the
        registry's ``max_manifest_bytes``, the most a manifest body is read.
        """
        tenant = tenant_of(repository)
        if tenant is None or request.method not in ("POST", "PATCH", "PUT"):
            return receive
        path = request.url.path
        manifest = _V2_MANIFEST.match(path) if request.method == "PUT" else None
        publish = request.method == "PUT" and _NATIVE_VERSION.match(path) is not None
        if manifest is None and not publish and "/uploads" not in path:
            return receive
        record = await authority.store.get_tenant(tenant)
        if record is None or record.quota_bytes is None:
            return receive
        quota = _Quota(authority.store, tenant, record.quota_bytes)
        cap = manifest_cap
        if manifest is not None:
            body, receive = await _read_body(receive, cap)
            if body is not None:
                digest = _digest_of(body, manifest["reference"])
                await quota.admit(await quota.manifest_cost(digest, len(body)))
            return receive
        if publish:
            body, receive = await _read_body(receive, cap)
            parts = (
                None if body is None else _native_parts(body, request.headers.get("content-type"))
            )
            if parts is not None:
                config, oci_manifest = parts
                cost = await quota.blob_cost(str(Digest.compute(config)), len(config))
                digest = str(Digest.compute(oci_manifest))
                cost += await quota.manifest_cost(digest, len(oci_manifest))
                await quota.admit(cost)
            return receive
        # Read afresh: the middleware may have dropped mount/from (a source the
        # caller cannot pull), and ``request.query_params`` was cached before.
        query = QueryParams(request.scope.get("query_string", b""))
        if request.method == "POST" and "mount" in query and "from" in query:
            return await QuotaGuard._mount(quota, query["mount"], query["from"], receive)
        return await QuotaGuard._upload(request, meta, quota, repository, receive)

    @staticmethod
    async def _mount(quota: _Quota, digest: str, source: str, receive: Receive) -> Receive:
        linked = await quota.store.linked_blob(source, digest)
        if linked is not None:
            # No link is made if it would pass the quota; a blob ``source`` does not
            # hold is no mount at all (the route opens an upload session instead).
            await quota.admit(await quota.blob_cost(*linked))
        return receive

    @staticmethod
    async def _upload(
        request: Request, meta: MetadataStore, quota: _Quota, repository: str, receive: Receive
    ) -> Receive:
        query = request.query_params
        named = query.get("digest") or query.get("sha256") or ""
        if named.startswith("sha256:") and await quota.store.tenant_references(quota.tenant, named):
            return receive  # already held: storing it again is free
        staged = 0
        if request.method != "POST":
            upload_id = request.url.path.rstrip("/").rpartition("/")[2]
            upload = await meta.get_upload(repository, upload_id)
            staged = 0 if upload is None else int(upload.offset)
        declared = request.headers.get("content-length", "")
        incoming = int(declared) if declared.isdigit() else 0
        usage = await quota.admit(staged + incoming)
        return _counting(receive, quota, usage, staged)


def _counting(receive: Receive, quota: _Quota, usage: int, staged: int) -> Receive:
    """``receive`` that refuses the body once it passes the quota (no ``Content-Length``)."""
    counted = 0

    async def guarded() -> Message:
        nonlocal counted
        message = await receive()
        if message["type"] == "http.request":
            counted += len(message.get("body", b""))
            if usage + staged + counted > quota.quota:
                raise quota_denied(quota.tenant, quota.quota, usage, staged + counted)
        return message

    return guarded
