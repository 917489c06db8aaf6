"""CNCF distribution as a peer registry, and a proxy that breaks it on purpose.

The peer is Debian's ``docker-registry`` (distribution 2.8.2) on a free
loopback port with filesystem storage in a temporary directory. The proxy is
an ASGI app that forwards to it and damages one aspect of its answers, so
the suite can be shown to catch each kind of violation, and so the suite's
in-process path (``httpx.ASGITransport``) is exercised as artifact-store's
in-process run will use it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DISTRIBUTION = Path("/usr/bin/docker-registry")

CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def distribution(workdir: Path) -> Iterator[str]:
    """Serve distribution from ``workdir`` until the block ends; yields its URL."""
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(CONFIG.format(root=workdir / "data", port=port))
    url = f"http://127.0.0.1:{port}"
    with (workdir / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            [str(DISTRIBUTION), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if httpx.get(f"{url}/v2/", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not start: {log.name}")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Answer:
    """An upstream response the fault may rewrite before the client sees it."""

    method: str
    path: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


Fault = Callable[[Answer], None]
_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class BreakingProxy:
    """ASGI app forwarding every request to ``upstream`` and applying ``fault`` to each answer."""

    def __init__(self, upstream: str, fault: Fault) -> None:
        self.upstream = upstream
        self.fault = fault
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = self.upstream + scope["raw_path"].decode()
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode()
        # Host passes through, so the Locations upstream builds point back at us.
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() not in _HOP]
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30)
        response = await self._client.request(
            scope["method"], target, headers=headers, content=body
        )
        answer = Answer(
            scope["method"],
            scope["path"],
            response.status_code,
            [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP],
            response.content,
        )
        self.fault(answer)
        out = [(k.encode(), v.encode()) for k, v in answer.headers]
        head = scope["method"] == "HEAD"
        # A HEAD keeps upstream's length: it describes the body a GET would get.
        length = response.headers.get("content-length") if head else str(len(answer.body))
        if length is not None:
            out.append((b"content-length", length.encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        await send({"type": "http.response.body", "body": b"" if head else answer.body})
