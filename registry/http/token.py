"""``/token``: the token endpoint of distribution's token authentication.

``GET /token?service=…&scope=…`` with optional Basic credentials (no
credentials: an anonymous token, which is how docker pulls public images)
https://github.com/distribution/distribution/blob/main/docs/content/spec/auth/token.md
and the OAuth2 form ``POST /token`` (``grant_type=password`` or
``refresh_token``) that docker and oras use after a login
https://github.com/distribution/distribution/blob/main/docs/content/spec/auth/oauth.md

The token grants each requested action only where policy allows it; a
request for more is not an error, the token simply carries less.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from oci.errors import Denied, SizeInvalid, Unauthorized
from registry.auth.authority import Authority
from registry.auth.policy import Principal, anonymous
from registry.auth.scope import Scope, parse_scopes

__all__ = ["token_endpoint"]

_MAX_FORM = 64 * 1024


async def _grant(authority: Authority, principal: Principal, wanted: list[Scope]) -> list[Scope]:
    granted: list[Scope] = []
    for scope in wanted:
        if scope.type == "repository":
            actions = scope.actions & await authority.permitted(principal, scope.name)
        elif scope.type == "registry" and scope.name == "catalog":
            # Anyone may list; the listing itself shows only what they may pull.
            actions = frozenset({"*"})
        else:
            actions = frozenset()
        if actions:
            granted.append(Scope(scope.type, scope.name, actions))
    return granted


async def _form(request: Request) -> dict[str, str]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            raise SizeInvalid("token request too large")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in fields.items()}


def _check_service(authority: Authority, service: str | None) -> None:
    if service is not None and service != authority.settings.auth.service:
        raise Denied("unknown service", detail={"service": service})


async def token_endpoint(request: Request, authority: Authority) -> Response:
    if request.method == "GET":
        query = request.query_params
        _check_service(authority, query.get("service"))
        header = request.headers.get("authorization")
        principal = await authority.authenticate(header) if header else anonymous()
        if principal.token_access is not None:
            raise Unauthorized("an access token cannot be exchanged for another")
        scopes = parse_scopes(query.getlist("scope"))
        offline = query.get("offline_token") == "true"
        refresh: str | None = None
    elif request.method == "POST":
        form = await _form(request)
        _check_service(authority, form.get("service"))
        grant_type = form.get("grant_type")
        if grant_type == "password":
            principal = await authority.login(
                form.get("username") or None, form.get("password", "")
            )
        elif grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            principal = await authority.refresh(refresh)
        else:
            raise Unauthorized("unsupported grant_type", detail={"grant_type": grant_type})
        scopes = parse_scopes([form.get("scope", "")])
        offline = form.get("access_type") == "offline" or grant_type == "refresh_token"
        refresh = form.get("refresh_token") if grant_type == "refresh_token" else None
    else:
        raise Denied("method not allowed on /token")
    issued = await authority.tokens.issue(principal, await _grant(authority, principal, scopes))
    document: dict[str, Any] = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    }
    if offline and not principal.is_anonymous:
        document["refresh_token"] = refresh or await authority.tokens.issue_refresh(principal)
    return Response(
        json.dumps(document),
        200,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
