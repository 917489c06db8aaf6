"""The Authority: everything the middleware and the token endpoint ask of auth, in one object.

It authenticates an ``Authorization`` header (Basic with a password or API
token; Bearer with our own access token, an API token or an OIDC token),
slows password guessing down, enforces request rates, and answers what a
principal may do on a repository. It holds no state that must be shared:
users, keys, policies and buckets are in the database; the only memory is
caches that expire in seconds.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from oci.errors import TooManyRequests, Unauthorized
from registry.auth.keys import KeyRing
from registry.auth.oidc import OidcVerifier
from registry.auth.policy import Principal, allowed, anonymous
from registry.auth.ratelimit import RateLimiter
from registry.auth.store import TOKEN_PREFIX, AuthStore, User
from registry.auth.tokens import InvalidToken, TokenIssuer
from registry.config import Settings

__all__ = ["MAX_AUTHORIZATION", "Authority", "open_authority"]

log = logging.getLogger("artifact_store.auth")

# Far above any real credential or JWT; beyond it we refuse without parsing.
MAX_AUTHORIZATION = 8 * 1024
_CACHE_SECONDS = 30.0
# Short against the clock skew leeway (5 s), so an expired token is refused
# within a few seconds of its exp even when its verdict was cached.
_TOKEN_CACHE_SECONDS = 2.0
_LOGIN_RATE = 0.2  # failed logins refill one per five seconds ...
_LOGIN_BURST = 5  # ... after five in a row


@dataclass(frozen=True, slots=True)
class Credentials:
    scheme: str
    username: str | None
    secret: str


def parse_authorization(header: str | None) -> Credentials | None:
    if header is None:
        return None
    if len(header) > MAX_AUTHORIZATION:
        raise Unauthorized("authorization header too large")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed basic credentials") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise Unauthorized("malformed basic credentials")
        return Credentials("basic", username, password)
    if scheme.lower() == "bearer" and value:
        return Credentials("bearer", None, value)
    raise Unauthorized("unsupported authorization scheme")


class Authority:
    def __init__(self, store: AuthStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.keys = KeyRing(store.engine)
        self.tokens = TokenIssuer(
            self.keys,
            issuer=settings.auth.issuer,
            service=settings.auth.service,
            ttl=settings.auth.token_ttl_seconds,
        )
        self.limiter = RateLimiter(store.engine)
        self.oidc: OidcVerifier | None = None
        if settings.auth.oidc_issuer:
            self.oidc = OidcVerifier(
                settings.auth.oidc_issuer,
                settings.auth.oidc_audience or settings.auth.service,
                username_claim=settings.auth.oidc_username_claim,
                tenant_claim=settings.auth.oidc_tenant_claim,
                roles_claim=settings.auth.oidc_roles_claim,
            )
        self._verified: dict[str, tuple[float, User]] = {}
        self._tokens: dict[str, tuple[float, Principal]] = {}

    async def _login(self, username: str | None, secret: str) -> User:
        """A password or API token check, with failed guesses rate limited per account."""
        cache_key = hashlib.sha256(f"{username}\0{secret}".encode()).hexdigest()
        cached = self._verified.get(cache_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        account = username or secret[: len(TOKEN_PREFIX) + 16]
        bucket = f"login:{account}"
        wait = await self.limiter.peek(bucket, _LOGIN_RATE, _LOGIN_BURST)
        if wait is not None:
            raise TooManyRequests("too many failed logins; try later", retry_after=int(wait))
        user = await self.store.authenticate(username, secret)
        if user is None:
            log.info("failed login for account %r", account[:64])
            await self.limiter.take(bucket, _LOGIN_RATE, _LOGIN_BURST)
            raise Unauthorized("invalid username or password")
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[cache_key] = (time.monotonic() + _CACHE_SECONDS, user)
        return user

    async def login(self, username: str | None, secret: str) -> Principal:
        return (await self._login(username, secret)).principal()

    async def authenticate(self, header: str | None) -> Principal:
        """The principal behind ``header``; anonymous when there is none."""
        credentials = parse_authorization(header)
        if credentials is None:
            return anonymous()
        if credentials.scheme == "basic":
            return await self.login(credentials.username, credentials.secret)
        token = credentials.secret
        if token.startswith(TOKEN_PREFIX):
            return await self.login(None, token)
        # A verified JWT stays valid until it expires; caching the verdict for a
        # few seconds saves the signature check on every request of a pull.
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._tokens.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            if self.oidc is not None and self.oidc.claims_issuer(token):
                principal = await self.oidc.verify(token)
            else:
                principal = await self.tokens.verify_access(token)
        except InvalidToken as exc:
            log.info("rejected bearer token: %s", exc)
            raise Unauthorized("invalid or expired token") from None
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        self._tokens[key] = (time.monotonic() + _TOKEN_CACHE_SECONDS, principal)
        return principal

    async def refresh(self, refresh_token: str) -> Principal:
        try:
            subject, issued_at = await self.tokens.verify_refresh(refresh_token)
        except InvalidToken as exc:
            log.info("rejected refresh token: %s", exc)
            raise Unauthorized("invalid refresh token") from None
        user = await self.store.get_user(subject)
        if user is None or issued_at < int(user.credentials_changed_at.timestamp()):
            raise Unauthorized("invalid refresh token")
        return user.principal()

    async def permitted(self, principal: Principal, repository: str) -> frozenset[str]:
        return allowed(principal, repository, await self.store.policies())

    async def rate_limit(self, principal: Principal, client: str) -> None:
        """Per-principal and per-tenant token buckets; 429 with Retry-After when empty."""
        settings = self.settings
        checks: list[tuple[str, float, int]] = []
        if settings.auth.rate_per_second > 0:
            who = f"ip:{client}" if principal.is_anonymous else f"p:{principal.name}"
            checks.append((who, settings.auth.rate_per_second, settings.auth.rate_burst))
        if principal.tenant:
            tenant = await self.store.get_tenant(principal.tenant)
            if tenant is not None and tenant.rate_per_second:
                burst = tenant.burst or max(1, int(tenant.rate_per_second))
                checks.append((f"t:{principal.tenant}", tenant.rate_per_second, burst))
        for key, rate, burst in checks:
            wait = await self.limiter.take(key, rate, burst)
            if wait is not None:
                raise TooManyRequests(
                    "request rate limit exceeded",
                    detail={"limit": key.partition(":")[0]},
                    retry_after=int(wait),
                )


@contextlib.asynccontextmanager
async def open_authority(settings: Settings) -> AsyncIterator[Authority]:
    """An Authority on the configured metadata database (already migrated)."""
    store = AuthStore.open(settings.resolved_database_url)
    try:
        yield Authority(store, settings)
    finally:
        await store.close()
