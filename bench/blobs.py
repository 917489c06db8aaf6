"""Blob transfer over the OCI Distribution API, streamed from a generator.

The data is never held whole: a blob is produced piece by piece from a seed,
so a 1 GiB push costs the client one piece of memory. Each piece starts with
its own index, which keeps every piece (and every seed's blob) distinct, so a
registry cannot answer a push by finding content it already stores.

Push flows, per
https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-blobs
- monolithic: ``POST /v2/<name>/blobs/uploads/`` then one ``PUT <location>?digest=``
  carrying the whole body;
- chunked: ``POST``, one ``PATCH <location>`` per chunk with ``Content-Range``,
  each answer giving the next location, then ``PUT <location>?digest=`` with no body.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import socket
import time
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx

__all__ = [
    "PIECE",
    "TransferError",
    "blob_digest",
    "blob_pieces",
    "pull",
    "pull_socket",
    "push_chunked",
    "push_monolithic",
]

PIECE = 1 << 20


class TransferError(RuntimeError):
    """The registry answered a step of a transfer with an unexpected status."""


def blob_pieces(size: int, seed: int, piece: int = PIECE) -> Iterator[bytes]:
    """Yield ``size`` bytes of pseudo-random data in pieces of ``piece`` bytes."""
    base = random.Random(seed).randbytes(piece)
    for index, start in enumerate(range(0, size, piece)):
        length = min(piece, size - start)
        yield (index.to_bytes(8, "big") + base[8:])[:length]


def blob_digest(size: int, seed: int) -> str:
    """The sha256 digest of the blob ``blob_pieces(size, seed)`` streams."""
    hasher = hashlib.sha256()
    for chunk in blob_pieces(size, seed):
        hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


def _expect(response: httpx.Response, status: int, step: str) -> None:
    if response.status_code != status:
        raise TransferError(
            f"{step}: expected {status}, got {response.status_code}: {response.text[:500]}"
        )


def _location(response: httpx.Response) -> str:
    """The absolute upload URL; the spec lets a registry answer a relative one."""
    location: str | None = response.headers.get("location")
    if not location:
        raise TransferError(f"{response.request.method} answered without a Location")
    return urljoin(str(response.request.url), location)


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def _start(client: httpx.Client, base_url: str, repo: str) -> str:
    response = client.post(f"{base_url}/v2/{repo}/blobs/uploads/")
    _expect(response, 202, "POST upload")
    return _location(response)


def push_monolithic(
    client: httpx.Client, base_url: str, repo: str, size: int, seed: int, digest: str
) -> float:
    """POST then one PUT with the whole body; returns the seconds both took."""
    started = time.perf_counter()
    location = _start(client, base_url, repo)
    response = client.put(
        _with_digest(location, digest),
        content=blob_pieces(size, seed),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )
    _expect(response, 201, "PUT upload")
    return time.perf_counter() - started


def push_chunked(
    client: httpx.Client,
    base_url: str,
    repo: str,
    size: int,
    seed: int,
    digest: str,
    chunk_size: int,
) -> float:
    """POST, PATCH per ``chunk_size`` bytes, then a closing PUT; returns seconds."""
    if chunk_size % PIECE and chunk_size < size:
        raise ValueError(f"chunk size must be a multiple of {PIECE} bytes")
    started = time.perf_counter()
    location = _start(client, base_url, repo)
    pieces = blob_pieces(size, seed)
    for start in range(0, size, chunk_size):
        end = min(start + chunk_size, size)
        body = itertools.islice(pieces, -(-(end - start) // PIECE))
        response = client.patch(
            location,
            content=body,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(end - start),
                "Content-Range": f"{start}-{end - 1}",
            },
        )
        _expect(response, 202, f"PATCH {start}-{end - 1}")
        location = _location(response)
    response = client.put(_with_digest(location, digest), headers={"Content-Length": "0"})
    _expect(response, 201, "PUT upload")
    return time.perf_counter() - started


def pull(
    client: httpx.Client,
    base_url: str,
    repo: str,
    digest: str,
    size: int,
    *,
    verify: bool = False,
) -> float:
    """GET a blob to nowhere, checking its length (and digest when asked); returns seconds.

    Hashing on the client is off for timed runs: on a two-core machine it would
    take CPU from the server being measured.
    """
    hasher = hashlib.sha256() if verify else None
    received = 0
    started = time.perf_counter()
    with client.stream("GET", f"{base_url}/v2/{repo}/blobs/{digest}") as response:
        _expect(response, 200, "GET blob")
        for chunk in response.iter_raw(PIECE):
            received += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
    elapsed = time.perf_counter() - started
    if received != size:
        raise TransferError(f"GET blob: received {received} bytes, expected {size}")
    if hasher is not None and f"sha256:{hasher.hexdigest()}" != digest:
        raise TransferError("GET blob: content does not match its digest")
    return elapsed


_RECEIVE = 4 << 20


def pull_socket(base_url: str, repo: str, digest: str, size: int, *, verify: bool = False) -> float:
    """``pull`` over a bare socket: one ``recv_into`` per up to 4 MiB, no HTTP library.

    On this two-core machine an HTTP client library parsing the body in
    small pieces tops out near the rate a registry serves, so the figure
    would be the client's; this one reads as fast as the kernel hands bytes
    over. The answer must be a 200 with ``Content-Length`` (no redirects, no
    chunked encoding): what both registries send for a stored blob.
    """
    parts = urlsplit(f"{base_url}/v2/{repo}/blobs/{digest}")
    hasher = hashlib.sha256() if verify else None
    buffer = bytearray(_RECEIVE)
    view = memoryview(buffer)
    started = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port or 80)) as sock:
        request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            piece = sock.recv(65536)
            if not piece:
                raise TransferError("GET blob: connection closed before the headers ended")
            head += piece
        head, _, body = head.partition(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise TransferError(f"GET blob: answered {head[:200]!r}")
        length = re.search(rb"\r\ncontent-length:\s*(\d+)", head.lower())
        if length is None or int(length.group(1)) != size:
            raise TransferError(f"GET blob: Content-Length is not {size}: {head[:500]!r}")
        received = len(body)
        if hasher is not None:
            hasher.update(body)
        while received < size:
            count = sock.recv_into(view, min(_RECEIVE, size - received))
            if count == 0:
                break
            received += count
            if hasher is not None:
                hasher.update(view[:count])
    elapsed = time.perf_counter() - started
    if received != size:
        raise TransferError(f"GET blob: received {received} bytes, expected {size}")
    if hasher is not None and f"sha256:{hasher.hexdigest()}" != digest:
        raise TransferError("GET blob: content does not match its digest")
    return elapsed
