"""The per-check view of the registry: requests, assertions, fixtures, cleanup.

Strategy: each check gets a fresh ``Context`` with its own repository names
under the run's namespace and its own cleanup list, so checks never depend on
one another's leftovers and can run in any order or alone (``--only``). The
HTTP client and the log of 4xx responses are shared by the whole run, so the
error-body sweep can judge every client error the suite provoked.

URLs from ``Location`` headers are resolved against the request that returned
them (RFC 3986), as the spec allows both absolute and relative locations
(https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#post-then-put);
a location on another origin (uploads or pulls offloaded elsewhere) is
followed with a plain client rather than the caller's transport.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.content import Blob, Manifest
from conformance.result import CheckFailed, Skipped

__all__ = ["Context", "ErrorSample", "RunState"]

# The error codes of the spec's table
# (https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#error-codes)
# and the legacy Docker codes it says a client may still meet
# (#legacy-docker-support-error-codes).
SPEC_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)
LEGACY_CODES = frozenset(
    {"TAG_INVALID", "MANIFEST_UNVERIFIED", "PAGINATION_NUMBER_INVALID", "RANGE_INVALID"}
)


@dataclass(frozen=True, slots=True)
class ErrorSample:
    """One 4xx response the run saw, kept for the error-body sweep."""

    check: str
    method: str
    path: str
    status: int
    content_type: str
    body: bytes


@dataclass(slots=True)
class RunState:
    client: httpx.AsyncClient
    namespace: str
    errors_seen: list[ErrorSample] = field(default_factory=list)
    _foreign: httpx.AsyncClient | None = None

    def foreign(self) -> httpx.AsyncClient:
        if self._foreign is None:
            self._foreign = httpx.AsyncClient(timeout=self.client.timeout)
        return self._foreign

    async def aclose(self) -> None:
        if self._foreign is not None:
            await self._foreign.aclose()


def envelope_problem(body: bytes) -> str | None:
    """Why ``body`` is not the spec's error envelope, or None when it is."""
    try:
        document = json.loads(body)
    except ValueError:
        return f"body is not JSON: {body[:120]!r}"
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors:
        return f'body has no non-empty "errors" list: {body[:200]!r}'
    for entry in errors:
        if not isinstance(entry, dict) or not isinstance(entry.get("code"), str):
            return f"error entry without a string code: {entry!r}"
        if entry["code"] not in SPEC_CODES | LEGACY_CODES:
            return f"error code {entry['code']!r} is not one of the spec's codes"
        if "message" in entry and not isinstance(entry["message"], str):
            return f"error message is not a string: {entry!r}"
    return None


def error_codes(response: httpx.Response) -> list[str]:
    try:
        document = json.loads(response.content)
        return [str(e.get("code")) for e in document["errors"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def describe(response: httpx.Response) -> str:
    body = response.content[:200] if response.request.method != "HEAD" else b""
    return f"{response.request.method} {response.url.path} -> {response.status_code} {body!r}"


class Context:
    """What a check holds: the run's client, fresh names, and what to delete afterwards."""

    def __init__(self, state: RunState, check: str = "") -> None:
        self.state = state
        self.check = check
        self._cleanup: list[str] = []

    # -- names and requests ------------------------------------------------

    def repo(self, label: str) -> str:
        """A repository nobody else uses: ``<namespace>/<label>-<random>``."""
        return f"{self.state.namespace}/{label}-{secrets.token_hex(4)}"

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        client = self.state.client
        target = httpx.URL(url)
        if params:
            # Merged by hand: httpx's params= replaces the query, and a Location
            # MAY carry critical query parameters of its own (#post-then-put).
            target = target.copy_merge_params(params)
        if target.is_absolute_url and not _same_origin(target, client.base_url):
            client = self.state.foreign()
        response = await client.request(method, target, headers=headers, content=content)
        if 400 <= response.status_code < 500 and method != "HEAD":
            self.state.errors_seen.append(
                ErrorSample(
                    self.check,
                    method,
                    response.url.path,
                    response.status_code,
                    response.headers.get("Content-Type", ""),
                    response.content[:4096],
                )
            )
        return response

    async def get_following(
        self, url: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET that follows redirects, as a pull may be sent to a blob store's signed URL."""
        response = await self.request("GET", url, headers=headers)
        for _ in range(5):
            if response.status_code not in (301, 302, 303, 307, 308):
                break
            target = response.url.join(self.location(response))
            response = await self.request("GET", target, headers=headers)
        return response

    # -- assertions ----------------------------------------------------------

    @staticmethod
    def expect(response: httpx.Response, *statuses: int, why: str = "") -> httpx.Response:
        if response.status_code not in statuses:
            wanted = " or ".join(map(str, statuses))
            note = f" ({why})" if why else ""
            raise CheckFailed(f"expected {wanted}{note}; got {describe(response)}")
        return response

    @staticmethod
    def expect_error(
        response: httpx.Response, statuses: Iterable[int], codes: Iterable[str]
    ) -> None:
        """The status is one of ``statuses`` and the envelope names one of ``codes``."""
        statuses, codes = tuple(statuses), set(codes)
        Context.expect(response, *statuses)
        problem = envelope_problem(response.content)
        if problem is not None:
            raise CheckFailed(f"{describe(response)}: {problem}")
        if not codes & set(error_codes(response)):
            raise CheckFailed(
                f"expected error code {' or '.join(sorted(codes))}; got {describe(response)}"
            )

    @staticmethod
    def location(response: httpx.Response) -> str:
        value = response.headers.get("Location")
        if not value:
            raise CheckFailed(f"no Location header: {describe(response)}")
        return str(response.url.join(value))

    @staticmethod
    def header(response: httpx.Response, name: str) -> str:
        value: str | None = response.headers.get(name)
        if value is None:
            raise CheckFailed(f"no {name} header: {describe(response)}")
        return value

    # -- fixtures ------------------------------------------------------------

    def cleanup_later(self, url: str) -> None:
        self._cleanup.append(url)

    async def cleanup(self) -> None:
        """DELETE what the check made, newest first; deletes are optional, so refusals pass."""
        for url in reversed(self._cleanup):
            with contextlib.suppress(httpx.HTTPError):
                await self.state.client.request("DELETE", url)
        self._cleanup.clear()

    async def push_blob(self, repo: str, blob: Blob) -> None:
        """POST then PUT, the upload every pushing registry has; failure skips the check."""
        try:
            started = await self.request("POST", f"/v2/{repo}/blobs/uploads/")
            self.expect(started, 202)
            done = await self.request(
                "PUT",
                self.location(started),
                params={"digest": blob.digest},
                headers={"Content-Type": "application/octet-stream"},
                content=blob.data,
            )
            self.expect(done, 201)
        except CheckFailed as exc:
            raise Skipped(f"could not push a fixture blob: {exc}") from exc
        self.cleanup_later(f"/v2/{repo}/blobs/{blob.digest}")

    async def push_manifest(
        self, repo: str, manifest: Manifest, reference: str | None = None
    ) -> httpx.Response:
        """Push ``manifest`` with its blobs and child manifests; failure skips the check."""
        for child in manifest.children:
            await self.push_manifest(repo, child)
        for blob in manifest.blobs:
            await self.push_blob(repo, blob)
        response = await self.put_manifest(repo, manifest, reference or manifest.digest)
        if response.status_code != 201:
            raise Skipped(f"could not push a fixture manifest: {describe(response)}")
        return response

    async def put_manifest(
        self, repo: str, manifest: Manifest, reference: str, query: str = ""
    ) -> httpx.Response:
        """One manifest PUT (``query``: what follows ``?``), cleaned up later if it lands."""
        response = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}" + (f"?{query}" if query else ""),
            headers={"Content-Type": manifest.media_type},
            content=manifest.body,
        )
        if response.status_code == 201:
            self.cleanup_later(f"/v2/{repo}/manifests/{manifest.digest}")
        return response

    async def get_json(self, url: str, params: dict[str, str] | None = None) -> Any:
        response = self.expect(await self.request("GET", url, params=params), 200)
        try:
            return response.json()
        except ValueError as exc:
            raise CheckFailed(f"body is not JSON: {describe(response)}") from exc


def _same_origin(url: httpx.URL, base: httpx.URL) -> bool:
    if not base.is_absolute_url:
        return True
    return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
