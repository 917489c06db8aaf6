"""``GET /api/v1/events`` over a real server (Hypercorn), as JSON long-poll and as SSE."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette

from registry.events import EventSource
from registry.events.watcher import LogWatcher
from registry.http.errors import exception_handlers
from registry.http.events import routes
from registry.meta import MetadataStore
from registry.rules import Rules
from registry.service.writes import Writes
from tests.meta._content import blob, image

pytestmark = pytest.mark.anyio


@pytest.fixture
async def source(store: MetadataStore) -> AsyncIterator[EventSource]:
    watcher = LogWatcher(store)
    yield EventSource(store, watcher)
    await watcher.close()


@pytest.fixture
async def client(source: EventSource) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=routes(lambda request: source), exception_handlers=exception_handlers)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
        for _ in range(100):
            try:
                await http.get("/api/v1/events?limit=1")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        yield http
    stop.set()
    await server


async def commit(store: MetadataStore, repo: str, data: bytes) -> None:
    await Writes(store, Rules()).commit_blob(repo, blob(data), actor="alice")


async def test_events_are_served_with_their_view_and_a_resume_cursor(
    store: MetadataStore, client: httpx.AsyncClient
) -> None:
    config, layer = blob(b"{}"), blob(b"layer")
    await Writes(store, Rules()).commit_blob("team/app", config, actor="alice")
    await Writes(store, Rules()).commit_blob("team/app", layer, actor="alice")
    pushed = image(config, [layer])
    await Writes(store, Rules()).put_manifest(
        "team/app",
        pushed.digest,
        pushed.manifest,
        pushed.body,
        pushed.media_type,
        ["v1"],
        actor="bob",
    )

    first = (await client.get("/api/v1/events", params={"limit": 2})).json()
    assert [e["seq"] for e in first["events"]] == [1, 2]
    assert first["next"] == 2
    rest = (await client.get("/api/v1/events", params={"after": first["next"]})).json()
    (put,) = rest["events"]
    assert rest["next"] == 3
    assert put["seq"] == 3
    assert put["type"] == "manifest.put"
    assert put["actor"] == "bob"
    assert put["repository"] == "team/app"
    assert put["ts"].endswith("Z")
    assert dt.datetime.fromisoformat(put["ts"]).tzinfo == dt.UTC
    assert put["payload"]["digest"] == str(pushed.digest)
    assert put["payload"]["tags"] == ["v1"]
    # The body is left out (fetch it by digest); its size stays.
    assert "body" not in put["payload"]
    assert put["payload"]["size"] == len(pushed.body)
    blob_event = first["events"][0]["payload"]
    assert blob_event["sha256"] == str(config.sha256)
    assert blob_event["size"] == config.size
    assert base64.b64encode(b"x")  # bytes fields other than bodies would be base64


async def test_a_long_poll_is_answered_as_soon_as_an_event_is_committed(
    store: MetadataStore, client: httpx.AsyncClient
) -> None:
    await commit(store, "a/b", b"one")

    async def write_later() -> None:
        await asyncio.sleep(0.6)
        await commit(store, "a/b", b"two")

    writer = asyncio.create_task(write_later())
    started = time.monotonic()
    answer = (await client.get("/api/v1/events", params={"after": 1, "wait": 10})).json()
    elapsed = time.monotonic() - started
    await writer
    assert [e["seq"] for e in answer["events"]] == [2]
    assert 0.5 < elapsed < 3


async def test_a_long_poll_with_nothing_new_waits_then_returns_empty(
    store: MetadataStore, client: httpx.AsyncClient
) -> None:
    await commit(store, "a/b", b"one")
    started = time.monotonic()
    answer = (await client.get("/api/v1/events", params={"after": 1, "wait": 0.8})).json()
    assert time.monotonic() - started >= 0.75
    assert answer == {"events": [], "next": 1}


async def test_filters_select_repository_and_types_and_the_cursor_skips_the_rest(
    store: MetadataStore, client: httpx.AsyncClient
) -> None:
    await commit(store, "one/repo", b"1")  # seq 1
    await Writes(store, Rules()).start_upload("two/repo", "u1", actor="alice")  # seq 2
    await commit(store, "two/repo", b"2")  # seq 3
    await Writes(store, Rules()).end_upload("u1", "completed", actor="alice")  # seq 4
    await commit(store, "one/repo", b"3")  # seq 5

    params: list[tuple[str, str | int | float | bool | None]] = [
        ("repository", "two/repo"),
        ("type", "upload.started"),
        ("type", "upload.ended"),
    ]
    answer = (await client.get("/api/v1/events", params=params)).json()
    assert [(e["seq"], e["type"]) for e in answer["events"]] == [
        (2, "upload.started"),
        (4, "upload.ended"),
    ]
    # Long-poll once so the watcher has seen the head; a filter that matches
    # nothing then still moves the cursor past the events it skipped.
    await client.get("/api/v1/events", params={"after": 5, "wait": 0.3})
    nothing = (
        await client.get("/api/v1/events", params={"repository": "three/repo", "after": 0})
    ).json()
    assert nothing == {"events": [], "next": 5}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"after": "-1"}, "PAGINATION_NUMBER_INVALID"),
        ({"limit": "many"}, "PAGINATION_NUMBER_INVALID"),
        ({"wait": "nan"}, "PAGINATION_NUMBER_INVALID"),
        ({"type": "blob.vanished"}, "UNSUPPORTED"),
        ({"repository": "Not/Valid"}, "NAME_INVALID"),
    ],
)
async def test_bad_queries_are_spec_errors(
    client: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    response = await client.get("/api/v1/events", params=params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == code


async def test_sse_resumes_after_last_event_id_and_streams_new_events(
    store: MetadataStore, client: httpx.AsyncClient
) -> None:
    for data in (b"1", b"2", b"3"):
        await commit(store, "s/e", data)
    headers = {"Accept": "text/event-stream", "Last-Event-ID": "1"}
    seen: list[tuple[str, str]] = []
    async with client.stream("GET", "/api/v1/events", headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        async with asyncio.timeout(10):
            async for line in lines:
                if line.startswith(("id:", "event:")):
                    field, _, value = line.partition(": ")
                    seen.append((field, value))
                if len(seen) == 4:
                    break
            await commit(store, "s/e", b"4")
            async for line in lines:
                if line.startswith("id:"):
                    seen.append(("id", line.removeprefix("id: ")))
                    break
    assert seen == [
        ("id", "2"),
        ("event", "blob.committed"),
        ("id", "3"),
        ("event", "blob.committed"),
        ("id", "4"),
    ]
