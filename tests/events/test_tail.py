"""``artifact-store events tail`` against a served registry: filters, the end of the log,
resuming after a dropped connection, Ctrl-C."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bench.servers import artifact_store_command
from registry.cli.client import open_http
from registry.cli.events import describe, follow
from registry.config import Settings
from tests.events._proxy import TcpProxy
from tests.events.test_server import push_blob, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running(Settings(data_dir=str(tmp_path))) as client:
        yield client


async def _put(http: httpx.AsyncClient, repo: str, data: bytes) -> None:
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    response = await http.post(
        f"/api/v1/artifacts/{repo}/uploads", params={"sha256": sha}, content=data
    )
    assert response.status_code == 201, response.text


async def test_follow_filters_and_stops_at_the_end_without_following(
    http: httpx.AsyncClient,
) -> None:
    await _put(http, "one/app", b"a")
    await _put(http, "two/app", b"b")
    await _put(http, "one/app", b"c")
    base = str(http.base_url)

    def read(
        after: int | None, repository: str | None = None, types: list[str] | None = None
    ) -> list[dict[str, object]]:
        with open_http(base) as client:
            stream = follow(client, after=after, repository=repository, types=types,
                            keep_following=False, limit=1)  # fmt: skip
            return list(stream)

    everything = await asyncio.to_thread(read, after=0)
    assert [e["seq"] for e in everything] == [1, 2, 3]  # one per request: limit=1 pages
    mine = await asyncio.to_thread(read, after=0, repository="one/app")
    assert [(e["seq"], e["repository"]) for e in mine] == [(1, "one/app"), (3, "one/app")]
    assert await asyncio.to_thread(read, after=0, types=["manifest.put"]) == []
    # From the end: nothing yet, and the cursor does not go back to the start.
    assert await asyncio.to_thread(read, after=None) == []
    assert "(1 B)" in describe(everything[0])


async def test_after_end_waits_for_what_comes_next(http: httpx.AsyncClient) -> None:
    await _put(http, "one/app", b"old")
    waiting = asyncio.create_task(http.get("/api/v1/events", params={"after": "end", "wait": 10}))
    await asyncio.sleep(0.5)
    await _put(http, "one/app", b"new")
    answer = (await waiting).json()
    assert [e["seq"] for e in answer["events"]] == [2]
    empty = (await http.get("/api/v1/events", params={"after": "end"})).json()
    assert empty == {"events": [], "next": 2}


async def _line(stream: asyncio.StreamReader) -> dict[str, object]:
    raw = await asyncio.wait_for(stream.readline(), 60)
    assert raw, "events tail ended early"
    event: dict[str, object] = json.loads(raw)
    return event


def _default_sigint() -> None:
    """In the child: Ctrl-C at its default and deliverable, as in a user's terminal.

    Both states are inherited across exec, from whatever this test process
    was started by or ran before (a shell's background job ignores SIGINT;
    a library may block it in the thread that spawns): either would make the
    CLI deaf to the Ctrl-C this test sends. CI saw the CLI not exit twice.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_state(pid: int) -> str:
    """The child's blocked and ignored signal masks, for a failure message."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "unknown"
    return " ".join(line for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn")))


async def test_cli_resumes_after_a_dropped_connection_and_exits_0_on_ctrl_c(
    http: httpx.AsyncClient,
) -> None:
    port = http.base_url.port
    assert port is not None
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    await push_blob(http, b"before the tail")  # seq 1-3 (a /v2/ upload session)
    tail = await asyncio.create_subprocess_exec(
        *artifact_store_command(), "events", "tail", "--json", "--from-start",
        "--repository", "events/app", "--type", "blob.committed",
        "--server", f"http://127.0.0.1:{proxy.port}",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=_default_sigint,
    )  # fmt: skip
    assert tail.stdout is not None
    assert tail.stderr is not None
    try:
        first = await _line(tail.stdout)
        assert first["type"] == "blob.committed"
        # The tail now long-polls through the proxy; cut it and write while it is away.
        await asyncio.sleep(0.5)
        await proxy.cut()
        await push_blob(http, b"while the tail was away")
        await push_blob(http, b"and another")
        await asyncio.sleep(1.0)
        await proxy.start()  # the same port again
        second, third = await _line(tail.stdout), await _line(tail.stdout)
        assert [e["type"] for e in (second, third)] == ["blob.committed"] * 2
        assert int(str(first["seq"])) < int(str(second["seq"])) < int(str(third["seq"]))
        state = _signal_state(tail.pid)
        tail.send_signal(signal.SIGINT)
        try:
            status = await asyncio.wait_for(tail.wait(), 30)
        except TimeoutError:
            pytest.fail(f"events tail ignored Ctrl-C for 30 s ({state})")
        assert status == 0
        rest = await tail.stdout.read()
        assert rest == b""  # nothing printed twice
        assert b"resuming after seq" in await tail.stderr.read()
    finally:
        if tail.returncode is None:
            tail.kill()
            await tail.wait()
        await proxy.cut()


async def test_cli_human_lines_and_a_refused_filter(http: httpx.AsyncClient) -> None:
    await _put(http, "team/app", b"hello")
    server = str(http.base_url)
    done = await asyncio.to_thread(
        subprocess.run,
        [*artifact_store_command(), "events", "tail", "--from-start", "--no-follow",
         "--server", server],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.split()[:3] == ["1", line.split()[1], "blob.committed"]
    assert "team/app" in line
    assert "(5 B)" in line
    assert "by anonymous" in line
    refused = await asyncio.to_thread(
        subprocess.run,
        [*artifact_store_command(), "events", "tail", "--no-follow", "--type", "blob.vanished",
         "--server", server],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "UNSUPPORTED" in refused.stderr
    assert "blob.vanished" in refused.stderr
