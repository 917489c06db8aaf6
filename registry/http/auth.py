"""AuthMiddleware: authenticate, rate-limit and authorize every request before routing.

Theory of operation. ``scope.classify`` names the resource and action a
request needs; the Authority turns the Authorization header into a
principal; the decision below either lets the request through (possibly
rewritten) or answers with the spec's error envelope, rendered by the http
layer's one renderer:

- no usable credentials: 401 with the token challenge naming the scope, so
  docker, skopeo and oras fetch a token and retry;
  https://github.com/distribution/distribution/blob/main/docs/content/spec/auth/token.md
- a token that lacks a scope the principal could have: 403 with the
  challenge and ``error="insufficient_scope"`` (RFC 6750 section 3.1), so the
  client fetches a wider token;
- a read of another tenant's repository: 404 with the code the route would
  give for something that does not exist, so the answer is the same whether
  it exists or not; any other refusal: 403 DENIED;
- a cross-repository mount from a repository the caller cannot pull: the
  ``mount``/``from`` parameters are dropped, so the route opens a fresh
  upload (202), never a mount (201);
- a push (blob upload, cross-repository mount, manifest, native publish)
  that would take the tenant past its quota: 403 DENIED with a quota
  detail, before anything is kept (``registry.auth.quota``).

The principal is left in ``scope["state"]["principal"]`` for routes that
filter what they list (the catalog); ``registry.http.request.principal_of``
reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from oci.errors import (
    BlobUnknown,
    Denied,
    NameInvalid,
    NameUnknown,
    SpecError,
    Unauthorized,
)
from oci.reference import validate_repository
from registry.auth.authority import Authority
from registry.auth.policy import Principal
from registry.auth.quota import QuotaGuard, usage_document
from registry.auth.scope import Target, challenge, classify, scope_for, tenant_of
from registry.http.errors import error_response
from registry.http.request import url_for
from registry.http.state import state_of
from registry.http.token import token_endpoint

__all__ = ["AuthMiddleware"]

log = logging.getLogger("artifact_store.auth")


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        state = state_of(request)
        authority = state.require_auth()
        try:
            target = classify(
                request.method, scope["path"], scope.get("raw_path") or b"", request.query_params
            )
            if target.kind == "open":
                await self.app(scope, receive, send)
                return
            if target.kind == "token":
                response = await token_endpoint(request, authority)
                await response(scope, receive, send)
                return
            header = request.headers.get("authorization")
            try:
                principal = await authority.authenticate(header)
            except Unauthorized as exc:
                if exc.challenge is not None:
                    raise
                # The same refusal, naming where a client gets a token.
                challenged = self._challenge(request, target, None)
                raise Unauthorized(exc.message, detail=exc.detail, challenge=challenged) from exc
            client = scope.get("client") or ("unknown", 0)
            await authority.rate_limit(principal, str(client[0]))
            await self._authorize(request, authority, principal, target)
            scope.setdefault("state", {})["principal"] = principal
            if target.kind == "usage":
                assert target.tenant is not None
                # GET /api/v1/tenants/{tenant}/usage: bytes used, by kind, and the quota.
                document = await usage_document(authority.store, target.tenant)
                response = Response(json.dumps(document), 200, media_type="application/json")
                await response(scope, receive, send)
                return
            if target.kind == "repository" and target.action == "push":
                await self._rewrite_mount(scope, request, authority, principal)
                assert target.repository is not None
                registry = state.require_registry()
                receive = await QuotaGuard.check(
                    request,
                    authority,
                    registry.meta,
                    registry.settings.server.max_manifest_bytes,
                    target.repository,
                    receive,
                )
        except SpecError as exc:
            response = error_response(request, exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _challenge(self, request: Request, target: Target, error: str | None) -> str:
        settings = state_of(request).require_auth().settings
        realm = settings.auth.realm or url_for(request, "/token")
        return challenge(realm, settings.auth.service, scope_for(target), error)

    async def _authorize(
        self, request: Request, authority: Authority, principal: Principal, target: Target
    ) -> None:
        def unauthorized() -> Unauthorized:
            return Unauthorized(
                "authentication required", challenge=self._challenge(request, target, None)
            )

        def insufficient_scope() -> Denied:
            # RFC 6750 section 3.1: insufficient_scope is a 403 with the challenge, so
            # clients (oras) fetch a token with the wider scope and retry.
            return Denied(
                "the token does not grant this action",
                challenge=self._challenge(request, target, "insufficient_scope"),
            )

        if target.kind in ("base", "catalog"):
            if principal.is_anonymous and principal.token_access is None:
                raise unauthorized()
            token = principal.token_access
            if target.kind == "catalog" and token is not None and "registry:catalog" not in token:
                raise insufficient_scope()
            return
        if target.kind == "usage":
            if principal.is_global_admin or (
                principal.tenant == target.tenant and not principal.is_anonymous
            ):
                return
            raise unauthorized() if principal.is_anonymous else Denied("access denied")
        if target.repository is None:
            # Registry-wide endpoints (the unfiltered event stream, admin paths).
            if principal.is_global_admin and principal.token_access is None:
                return
            raise unauthorized() if principal.is_anonymous else Denied("access denied")
        repository = target.repository
        actions = await authority.permitted(principal, repository)
        if target.action in actions:
            return
        if principal.is_anonymous:
            raise unauthorized()
        if principal.token_access is not None:
            unrestricted = dataclasses.replace(principal, token_access=None)
            if target.action in await authority.permitted(unrestricted, repository):
                raise insufficient_scope()
        foreign = principal.tenant is not None and tenant_of(repository) != principal.tenant
        if foreign and target.action == "pull":
            # Decided before routing, so the answer cannot depend on what exists.
            if target.unknown == "blob":
                digest = request.url.path.rpartition("/")[2][:150]
                raise BlobUnknown(
                    f"blob {digest} is unknown to repository {repository}",
                    detail={"digest": digest},
                )
            raise NameUnknown(f"repository {repository} is not known", detail={"name": repository})
        raise Denied("access denied", detail={"name": repository, "action": target.action})

    async def _rewrite_mount(
        self, scope: Scope, request: Request, authority: Authority, principal: Principal
    ) -> None:
        query = request.query_params
        source = query.get("from")
        if request.method != "POST" or "mount" not in query or source is None:
            return
        try:
            validate_repository(source)
            may_pull = "pull" in await authority.permitted(principal, source)
        except NameInvalid:
            may_pull = False
        if may_pull:
            return
        kept: list[Any] = [
            (k, v)
            for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            if k not in ("mount", "from")
        ]
        scope["query_string"] = urlencode(kept).encode("latin-1")
