"""The server wires it together: /api/v1/events and, with NATS configured, the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config

from oci.digest import Digest
from registry.config import EventsSettings, Settings
from registry.http.app import create_app
from tests.events.conftest import NATS_URL, Namespace

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    app = create_app(settings)
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
        for _ in range(200):
            try:
                await http.get("/health")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        yield http
    stop.set()
    await server


async def push_blob(http: httpx.AsyncClient, data: bytes) -> None:
    digest = Digest.compute(data)
    response = await http.post(
        "/v2/events/app/blobs/uploads/",
        params={"digest": str(digest)},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text


async def test_a_push_reaches_the_http_stream_and_nats(
    tmp_path: Path, namespace: Namespace
) -> None:
    settings = Settings(data_dir=str(tmp_path), events=EventsSettings(NATS_URL, namespace.prefix))
    nc = await nats.connect(NATS_URL)
    try:
        async with running(settings) as http:
            waiting = asyncio.create_task(http.get("/api/v1/events", params={"wait": 10}))
            await asyncio.sleep(0.3)
            await push_blob(http, b"hello events")
            answer = (await waiting).json()
            # The long-poll answers as soon as the push's first event exists;
            # follow the cursor until its commit shows up.
            seen = [e["type"] for e in answer["events"]]
            while "blob.committed" not in seen:
                answer = (
                    await http.get("/api/v1/events", params={"after": answer["next"], "wait": 5})
                ).json()
                assert answer["events"], f"no blob.committed after {seen}"
                seen += [e["type"] for e in answer["events"]]
            assert seen[0] == "upload.started"
            everything = (await http.get("/api/v1/events", params={"wait": 1})).json()
            seqs = [e["seq"] for e in everything["events"]]

            sub = await nc.jetstream().subscribe(f"{namespace.prefix}.>", ordered_consumer=True)
            delivered = []
            for _ in seqs:
                msg = await sub.next_msg(timeout=10)
                delivered.append(json.loads(msg.data)["seq"])
            await sub.unsubscribe()
            assert delivered == seqs
    finally:
        await nc.close()


async def test_without_nats_the_http_stream_still_serves(tmp_path: Path) -> None:
    async with running(Settings(data_dir=str(tmp_path))) as http:
        await push_blob(http, b"no nats here")
        answer = (await http.get("/api/v1/events", params={"wait": 5})).json()
        assert "blob.committed" in [e["type"] for e in answer["events"]]
