"""Access and refresh tokens: short-lived JWTs signed with the registry's own key.

Access tokens follow distribution's token spec: ``iss``, ``sub``, ``aud``
(the service), ``exp``, ``nbf``, ``iat``, ``jti`` and an ``access`` claim
listing exactly the granted actions per resource.
https://github.com/distribution/distribution/blob/main/docs/content/spec/auth/jwt.md

Verification accepts one algorithm (ES256) named explicitly, so ``alg:
none`` and the HS256-with-the-public-key confusion are refused by PyJWT
before any key is used, and every registered claim is required. Refresh
tokens are JWTs too (``typ: refresh``), audience-bound to the token
endpoint, and die when the user's credentials change.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from registry.auth.keys import ALGORITHM, KeyRing
from registry.auth.policy import Principal
from registry.auth.scope import Scope

__all__ = ["InvalidToken", "IssuedToken", "TokenIssuer"]

_REQUIRED = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]
_LEEWAY = 5  # seconds of clock skew between processes


class InvalidToken(Exception):
    """A token we cannot accept; the reason is for logs, never for the client."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: str


class TokenIssuer:
    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        service: str,
        ttl: int = 300,
        refresh_ttl: int = 30 * 24 * 3600,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.service = service
        self.ttl = ttl
        self.refresh_ttl = refresh_ttl

    async def _sign(self, claims: dict[str, Any]) -> str:
        kid, key = await self.keys.signing_key()
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})

    def _base(self, subject: str, audience: str, ttl: int) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": secrets.token_hex(12),
        }

    async def issue(self, principal: Principal, granted: Iterable[Scope]) -> IssuedToken:
        claims = self._base(principal.name, self.service, self.ttl)
        claims["access"] = [
            {"type": s.type, "name": s.name, "actions": sorted(s.actions)} for s in granted
        ]
        claims["kind"] = principal.kind
        claims["tenant"] = principal.tenant
        claims["roles"] = sorted(principal.roles)
        issued = dt.datetime.fromtimestamp(claims["iat"], dt.UTC).isoformat()
        return IssuedToken(await self._sign(claims), self.ttl, issued)

    async def issue_refresh(self, principal: Principal) -> str:
        claims = self._base(principal.name, self.service, self.refresh_ttl)
        claims["typ"] = "refresh"
        return await self._sign(claims)

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        key = await self.keys.public_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.service,
                issuer=self.issuer,
                leeway=_LEEWAY,
                options={"require": _REQUIRED},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        return claims

    async def verify_access(self, token: str) -> Principal:
        claims = await self._decode(token)
        if claims.get("typ", "access") != "access" or not isinstance(claims.get("access"), list):
            raise InvalidToken("not an access token")
        access: dict[str, frozenset[str]] = {}
        for entry in claims["access"]:
            if not isinstance(entry, dict):
                raise InvalidToken("malformed access claim")
            kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
            if not isinstance(name, str) or not isinstance(actions, list):
                raise InvalidToken("malformed access claim")
            key = name if kind == "repository" else f"{kind}:{name}"
            access[key] = access.get(key, frozenset()) | frozenset(map(str, actions))
        tenant = claims.get("tenant")
        return Principal(
            str(claims["sub"]),
            str(claims.get("kind", "user")),
            tenant if isinstance(tenant, str) else None,
            frozenset(map(str, claims.get("roles") or [])),
            token_access=access,
        )

    async def verify_refresh(self, token: str) -> tuple[str, int]:
        """The subject and issue time of a refresh token."""
        claims = await self._decode(token)
        if claims.get("typ") != "refresh":
            raise InvalidToken("not a refresh token")
        return str(claims["sub"]), int(claims["iat"])
