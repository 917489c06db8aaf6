"""Throttling and 5xx are retried with backoff; other errors are not.

The faults come from a real HTTP proxy in front of the real S3 server that
answers some requests with ``503 SlowDown`` instead of forwarding them.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit

import pytest

from oci.digest import Digest
from storage._s3_retry import ATTEMPTS
from storage.errors import BlobNotFound, StorageUnavailable
from storage.s3 import S3BlobStore

pytestmark = pytest.mark.anyio

_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class _FaultyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.lock = threading.Lock()
        self.requests = 0
        self.fail_first = 0  # answer the next N requests with 503 SlowDown
        self.fail_every = 0  # ... and then every Nth one

    def should_fail(self) -> bool:
        with self.lock:
            self.requests += 1
            if self.fail_first > 0:
                self.fail_first -= 1
                return True
            return self.fail_every > 0 and self.requests % self.fail_every == 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FaultyProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.should_fail():
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(_SLOW_DOWN)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(_SLOW_DOWN)
            return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=60)
        # The signature covers Host: forward every header unchanged.
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            upstream.putheader(name, value)
        upstream.endheaders(body)
        response = upstream.getresponse()
        payload = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        upstream.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay


@pytest.fixture
def proxy(s3_store_url: str) -> Iterator[tuple[_FaultyProxy, S3BlobStore]]:
    """The faulty proxy and a store that reaches S3 through it."""
    parts = urlsplit(s3_store_url)
    endpoint = dict(q.split("=", 1) for q in parts.query.split("&"))["endpoint"]
    server = _FaultyProxy(urlsplit(endpoint).netloc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    via = parts.query.replace(endpoint, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield server, S3BlobStore.from_url(urlunsplit(parts._replace(query=via)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_throttling_is_retried_until_it_passes(
    proxy: tuple[_FaultyProxy, S3BlobStore],
) -> None:
    server, store = proxy
    server.fail_first = ATTEMPTS - 1
    await store.check()  # HEAD bucket (refused 5 times, then answered), PUT a health object
    assert server.requests == ATTEMPTS + 1


async def test_a_whole_push_and_pull_survive_intermittent_slowdowns(
    proxy: tuple[_FaultyProxy, S3BlobStore],
) -> None:
    server, store = proxy
    server.fail_every = 3
    data = bytes(range(256)) * 40_000  # two parts: a compose of UploadPartCopy calls
    writer = await store.upload("flaky")
    await writer.write(data)
    await writer.close()
    writer = await store.upload("flaky")
    info = await writer.commit(Digest.compute(data))
    assert b"".join([c async for c in await store.read(info.blake3)]) == data
    await store.delete(info.sha256)
    assert server.requests > 20  # many calls, a third of them refused at first


async def test_persistent_throttling_becomes_storage_unavailable(
    proxy: tuple[_FaultyProxy, S3BlobStore],
) -> None:
    server, store = proxy
    server.fail_first = 1_000
    with pytest.raises(StorageUnavailable, match="HTTP 503"):  # HEAD bucket: no XML body
        await store.check()
    assert server.requests == ATTEMPTS


async def test_a_missing_key_is_not_retried(proxy: tuple[_FaultyProxy, S3BlobStore]) -> None:
    server, store = proxy
    with pytest.raises(BlobNotFound):
        await store.stat(Digest.compute(b"never stored"))
    assert server.requests == 1
