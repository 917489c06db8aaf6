"""Signing the registry's own clients in: distribution's token flow and basic auth, as httpx.Auth.

Theory of operation. A request goes out with whatever this process already
holds for it: a cached bearer token whose grants cover the scope the
request will need, basic credentials once the server has asked for Basic,
or an API token (sent as ``Bearer ast_…``, which the server accepts as is).
If the server answers 401 (or 403 with ``error="insufficient_scope"``,
RFC 6750 section 3.1) with a challenge, the challenge decides:

- ``Bearer realm=…,service=…,scope=…``: fetch a token from the realm for
  the challenged scope (and the scope this client expects to need next, so
  a push does not fetch a pull token and then a push token), with basic
  credentials (``GET``, the token spec) or a refresh token from ``login``
  (``POST``, the OAuth2 form); cache it per scope until shortly before it
  expires, and retry once;
  https://github.com/distribution/distribution/blob/main/docs/content/spec/auth/token.md
- ``Basic``: retry once with the username and password.

A token the server refuses although it has not expired here (revoked, the
server's clock ahead) is dropped and fetched again, once per request. The
realm refusing the credentials ends the request with ``AuthError``. Secrets
never enter a message, a log line or a ``repr``.

The cache is shared by the threads of one client; a lock per scope makes
parallel workers that are all challenged at once fetch one token, not one
each.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "AuthError",
    "Challenge",
    "ClientError",
    "Credentials",
    "RegistryAuth",
    "parse_challenge",
]

# Refresh this long before the server's expiry, so a token never dies in flight.
_EXPIRY_MARGIN = 15.0
_DEFAULT_EXPIRES_IN = 60  # the token spec's default when the realm gives none
_CLIENT_ID = "artifact-store-cli"
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')


class ClientError(Exception):
    """The server refused, or the bytes did not verify; the message says which and why."""


class AuthError(ClientError):
    """The server would not sign us in; the message says why, never with a secret."""


@dataclass(frozen=True)
class Credentials:
    """What this client signs in with; ``repr`` hides every secret."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a password or an API token
    token: str | None = field(default=None, repr=False)  # an API token used alone
    refresh_token: str | None = field(default=None, repr=False)  # from ``login``

    @property
    def basic(self) -> tuple[str, str] | None:
        if self.username and self.password is not None:
            return self.username, self.password
        return None

    def __bool__(self) -> bool:
        return bool(self.basic or self.token or self.refresh_token)


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "bearer" or "basic", lower case
    params: dict[str, str]

    @property
    def scope(self) -> str | None:
        return self.params.get("scope") or None


def parse_challenge(header: str | None) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` value (RFC 9110 section 11.6.1)."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (
            m.group(3) if m.group(2) is None else re.sub(r"\\(.)", r"\1", m.group(2))
        )
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def _atoms(scopes: list[str]) -> frozenset[tuple[str, str, str]]:
    """``repository:a/b:pull,push`` as {(repository, a/b, pull), (repository, a/b, push)}."""
    found: set[tuple[str, str, str]] = set()
    for value in scopes:
        for item in value.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            found.update((kind, name, action) for action in actions.split(",") if action)
    return frozenset(found)


def _granted(token: str) -> frozenset[tuple[str, str, str]] | None:
    """The grants of a JWT access token (its ``access`` claim), read without verifying it:
    only to know which cached token to send; the server verifies. None if it is opaque."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        access = claims["access"]
        return frozenset(
            (str(entry["type"]), str(entry["name"]), str(action))
            for entry in access
            for action in entry["actions"]
        )
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        return None


@dataclass
class _Token:
    value: str
    grants: frozenset[tuple[str, str, str]]
    expires_at: float


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json()["errors"][0]
        return str(error.get("message") or error["code"])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        try:
            return str(response.json()["details"])
        except (ValueError, KeyError, TypeError):
            return response.reason_phrase or f"HTTP {response.status_code}"


_Flow = Generator[tuple[httpx.Request, bool], httpx.Response, None]


class RegistryAuth(httpx.Auth):
    """httpx.Auth for a registry: token flow or basic auth, whichever the server asks for.

    ``scope_of(request)`` names the scope the client expects a request to
    need (``repository:NAME:pull,push``), so a cached token can be sent up
    front; None sends the request bare and lets the challenge decide.
    """

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        scope_of: Callable[[httpx.Request], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials or Credentials()
        self.scope_of = scope_of or (lambda request: None)
        self.clock = clock
        self.fetches = 0  # tokens fetched from the realm (for tests and stats)
        self._tokens: list[_Token] = []
        self._basic = False  # the server asked for Basic: send it up front from now on
        self._basic_unscoped = False  # ... or only on registry-wide endpoints (no scope)
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    # -- the cache -------------------------------------------------------------

    def _cached(self, scopes: list[str]) -> _Token | None:
        wanted = _atoms(scopes)
        now = self.clock()
        with self._lock:
            self._tokens = [t for t in self._tokens if t.expires_at > now]
            for token in self._tokens:
                if wanted <= token.grants:
                    return token
        return None

    def _drop(self, token: _Token) -> None:
        with self._lock:
            self._tokens = [t for t in self._tokens if t is not token]

    def _fetch_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._fetching.setdefault(key, threading.Lock())

    # -- the flow --------------------------------------------------------------

    def _authorize(self, request: httpx.Request, value: str) -> None:
        request.headers["Authorization"] = value

    def _basic_header(self) -> str | None:
        basic = self.credentials.basic
        if basic is None:
            return None
        return "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()

    def _token_request(self, challenge: Challenge, scopes: list[str]) -> httpx.Request:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise AuthError(f"the registry named an unusable token realm {realm[:200]!r}")
        service = challenge.params.get("service")
        refresh = self.credentials.refresh_token
        if refresh and not self.credentials.basic:
            form = {"grant_type": "refresh_token", "refresh_token": refresh,
                    "client_id": _CLIENT_ID, "scope": " ".join(scopes)}  # fmt: skip
            if service:
                form["service"] = service
            return httpx.Request("POST", realm, data=form)
        params: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in scopes]
        if service:
            params.insert(0, ("service", service))
        headers = {}
        basic = self._basic_header()
        if basic is not None:
            headers["Authorization"] = basic
        elif self.credentials.token:
            headers["Authorization"] = f"Bearer {self.credentials.token}"
        return httpx.Request("GET", realm, params=params, headers=headers)

    def _accept(self, response: httpx.Response, scopes: list[str]) -> _Token:
        if response.status_code in (401, 403):
            who = self.credentials.username or ("the API token" if self.credentials.token else "")
            if self.credentials.refresh_token and not self.credentials.basic:
                raise AuthError(
                    f"the stored login was refused ({_reason(response)}); "
                    "run `artifact-store login` again"
                )
            raise AuthError(f"authentication failed for {who or 'anonymous'}: {_reason(response)}")
        if not response.is_success:
            raise AuthError(f"the token endpoint answered HTTP {response.status_code}")
        try:
            document: dict[str, Any] = response.json()
            value = document.get("token") or document["access_token"]
            expires_in = int(document.get("expires_in") or _DEFAULT_EXPIRES_IN)
        except (ValueError, KeyError, TypeError):
            raise AuthError("the token endpoint answered without a token") from None
        if not isinstance(value, str) or not value:
            raise AuthError("the token endpoint answered without a token")
        lifetime = max(expires_in - _EXPIRY_MARGIN, expires_in / 2)
        grants = _granted(value)
        token = _Token(value, _atoms(scopes) if grants is None else grants,
                       self.clock() + lifetime)  # fmt: skip
        with self._lock:
            self._tokens.append(token)
        return token

    def _flow(self, request: httpx.Request) -> _Flow:
        hint = self.scope_of(request)
        sent: _Token | None = None
        if self.credentials.token and not self.credentials.basic:
            self._authorize(request, f"Bearer {self.credentials.token}")
        elif hint is not None and (sent := self._cached([hint])) is not None:
            self._authorize(request, f"Bearer {sent.value}")
        elif (self._basic or (self._basic_unscoped and hint is None)) and (
            basic := self._basic_header()
        ) is not None:
            self._authorize(request, basic)
        response = yield request, False
        for _ in range(2):
            challenge = parse_challenge(response.headers.get("www-authenticate"))
            if challenge is None or response.status_code not in (401, 403):
                return
            scope_error = challenge.params.get("error") == "insufficient_scope"
            if response.status_code == 403 and not scope_error:
                return
            if challenge.scheme == "basic":
                basic = self._basic_header()
                if basic is None or request.headers.get("Authorization") == basic:
                    return  # nothing to offer, or the server refused what we sent
                self._basic = True
                self._authorize(request, basic)
            elif (
                challenge.scheme == "bearer"
                and challenge.scope is None
                and hint is None
                and (basic := self._basic_header()) is not None
            ):
                # A registry-wide endpoint (the whole event stream, admin paths): the
                # server grants those to a registry-wide admin's own credentials, not
                # to a token scoped to repositories, so send the credentials as they are.
                if request.headers.get("Authorization") == basic:
                    return
                self._basic_unscoped = True
                self._authorize(request, basic)
            elif challenge.scheme == "bearer":
                if self.credentials.token and not self.credentials.basic and sent is None:
                    # The API token alone was refused; a realm may still take it.
                    sent = _Token(self.credentials.token, frozenset(), 0.0)
                elif sent is not None:
                    self._drop(sent)  # refused before its time: revoked or clock skew
                scopes = [s for s in dict.fromkeys([challenge.scope, hint]) if s]
                with self._fetch_lock(" ".join(scopes)):
                    fresh = self._cached(scopes) if sent is None else None
                    if fresh is None:
                        self.fetches += 1
                        token_response = yield self._token_request(challenge, scopes), True
                        fresh = self._accept(token_response, scopes)
                sent = fresh
                self._authorize(request, f"Bearer {fresh.value}")
            else:
                return
            response = yield request, False

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        # Only token responses are read here: reading every response (httpx's
        # requires_response_body) would buffer a streamed download whole.
        flow = self._flow(request)
        try:
            outgoing, read = next(flow)
            while True:
                response = yield outgoing
                if read:
                    response.read()
                outgoing, read = flow.send(response)
        except StopIteration:
            return
        finally:
            flow.close()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> Any:  # pragma: no cover - the clients are synchronous
        raise NotImplementedError("RegistryAuth serves synchronous httpx clients")
        yield request
