"""Bearer tokens from an external OpenID Connect issuer, checked against its JWKS.

The issuer's keys are fetched from its discovery document's ``jwks_uri``
and cached; a token naming a ``kid`` we do not hold triggers one re-fetch
(at most one per ``_MIN_REFETCH`` seconds, so random kids cannot make us
hammer the issuer), which is how key rotation at the issuer is followed.
Signature, ``iss``, ``aud``, ``exp`` and ``nbf`` are checked by PyJWT with
the accepted algorithms named explicitly (never ``none`` or HMAC: an HMAC
"verified" with a public key is the classic forgery).
https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from registry.auth.policy import ROLES, Principal
from registry.auth.tokens import InvalidToken

__all__ = ["ALGORITHMS", "OidcVerifier"]

ALGORITHMS = ("RS256", "ES256", "EdDSA")
_MIN_REFETCH = 1.0
_MAX_AGE = 600.0


class OidcVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        username_claim: str = "sub",
        tenant_claim: str = "tenant",
        roles_claim: str = "roles",
        jwks_url: str | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.username_claim = username_claim
        self.tenant_claim = tenant_claim
        self.roles_claim = roles_claim
        self._jwks_url = jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = 0.0

    def claims_issuer(self, token: str) -> bool:
        """Whether ``token`` says it comes from our issuer (unverified, for routing only)."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return isinstance(claims, dict) and str(claims.get("iss", "")).rstrip("/") == self.issuer

    async def _refresh(self) -> None:
        self._fetched = time.monotonic()
        async with httpx.AsyncClient(timeout=5.0) as client:
            url = self._jwks_url
            if url is None:
                discovery = await client.get(f"{self.issuer}/.well-known/openid-configuration")
                discovery.raise_for_status()
                url = str(discovery.json()["jwks_uri"])
            response = await client.get(url)
            response.raise_for_status()
            document: dict[str, Any] = response.json()
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if not isinstance(entry, dict) or "kid" not in entry:
                continue
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue
        self._keys = keys

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        stale = time.monotonic() - self._fetched
        if (kid not in self._keys and stale > _MIN_REFETCH) or stale > _MAX_AGE:
            try:
                await self._refresh()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise InvalidToken(f"cannot fetch the issuer's keys: {exc}") from None
        return self._keys.get(kid)

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS or not isinstance(kid, str):
            raise InvalidToken(f"algorithm {alg!r} or kid {kid!r} is not accepted")
        key = await self._key(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=5,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        name = claims.get(self.username_claim)
        if not isinstance(name, str) or not name:
            raise InvalidToken(f"claim {self.username_claim!r} is missing")
        tenant = claims.get(self.tenant_claim)
        raw_roles = claims.get(self.roles_claim) or []
        roles = frozenset(r for r in raw_roles if isinstance(r, str) and r in ROLES)
        return Principal(
            f"oidc:{name}", "oidc", tenant if isinstance(tenant, str) and tenant else None, roles
        )
