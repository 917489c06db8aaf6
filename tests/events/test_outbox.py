"""The outbox delivers every event exactly once, in order, through crashes and partitions.

The publisher runs as a real subprocess (``python -m registry.events``)
and reaches NATS through a TCP proxy the test can cut; the events are
written by this process while the publisher is killed, restarted and cut
off. A JetStream consumer then reads the stream from the start.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats.js import JetStreamContext

from registry.meta import MetadataStore
from registry.rules import Rules
from registry.service.writes import Writes
from tests.events._proxy import TcpProxy
from tests.events.conftest import NATS_URL, Namespace
from tests.meta._content import blob
from tests.meta.conftest import UrlFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


class Publisher:
    """``python -m registry.events`` as a child process we can SIGKILL."""

    def __init__(self, database: str, nats_url: str, space: Namespace, log: Path) -> None:
        self._argv = [
            sys.executable,
            "-m",
            "registry.events",
            "--metadata",
            database,
            "--nats-url",
            nats_url,
            "--nats-subject",
            space.prefix,
            "--nats-stream",
            space.stream,
            "--poll-interval",
            "0.05",
        ]
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(self._argv, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def stream_size(js: JetStreamContext, stream: str) -> int:
    try:
        return int((await js.stream_info(stream)).state.messages)
    except nats.js.errors.NotFoundError:
        return 0


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    async def poll() -> None:
        # The state lives in another process (the stream), so there is nothing to wait on.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), within)
    except TimeoutError:
        pytest.fail(f"timed out after {within}s waiting for {what}")


async def write_events(store: MetadataStore, count: int, pause: float) -> None:
    for i in range(count):
        await Writes(store, Rules()).commit_blob(
            "outbox/test", blob(f"event {i}".encode()), actor="writer"
        )
        await asyncio.sleep(pause)


async def consume_all(js: JetStreamContext, space: Namespace, expected: int) -> list[int]:
    """What a fresh consumer reads from the start of the stream, plus anything extra."""
    sub = await js.subscribe(f"{space.prefix}.>", ordered_consumer=True)
    seqs: list[int] = []
    try:
        for _ in range(expected):
            msg = await sub.next_msg(timeout=10)
            body = json.loads(msg.data)
            assert msg.headers is not None
            assert msg.headers["Nats-Msg-Id"] == str(body["seq"])
            assert msg.subject == f"{space.prefix}.{body['type']}"
            seqs.append(body["seq"])
        # Nothing beyond them: a duplicate would arrive here.
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=1)
    finally:
        await sub.unsubscribe()
    return seqs


@pytest.fixture
async def jetstream() -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(NATS_URL)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def test_every_event_reaches_jetstream_once_in_order_through_kills_and_partitions(
    make_url: UrlFactory, namespace: Namespace, jetstream: JetStreamContext, tmp_path: Path
) -> None:
    total = 240
    database = make_url()
    store = await MetadataStore.open(database)
    proxy = TcpProxy("127.0.0.1", 4222)
    await proxy.start()
    log = tmp_path / "publisher.log"
    publisher = Publisher(database, f"nats://127.0.0.1:{proxy.port}", namespace, log)
    publisher.start()
    writer = asyncio.create_task(write_events(store, total, pause=0.02))
    try:

        async def published_at_least(n: int) -> bool:
            return await stream_size(jetstream, namespace.stream) >= n

        # Crash mid-stream: SIGKILL while events keep arriving, then restart.
        await until(lambda: published_at_least(40), 60, "the first 40 events")
        publisher.kill()
        # A publish already in flight through the proxy may still land; after
        # that settles, nothing more may arrive while the publisher is dead.
        await asyncio.sleep(0.5)
        killed_at = await stream_size(jetstream, namespace.stream)
        await asyncio.sleep(0.5)
        assert await stream_size(jetstream, namespace.stream) == killed_at
        publisher.start()
        await until(lambda: published_at_least(killed_at + 30), 60, "events after the restart")

        # Partition: NATS unreachable for the publisher (only) for two seconds.
        await proxy.cut()
        await asyncio.sleep(2)
        await proxy.start()
        cut_at = await stream_size(jetstream, namespace.stream)
        await until(lambda: published_at_least(cut_at + 30), 60, "events after the partition")

        # And once more a crash, this time straight after a partition.
        publisher.kill()
        await proxy.cut()
        publisher.start()
        await asyncio.sleep(1)
        await proxy.start()

        await writer
        await until(lambda: published_at_least(total), 90, f"all {total} events")
        await asyncio.sleep(1)  # give a wrongly duplicated publish time to land
        assert await stream_size(jetstream, namespace.stream) == total
        assert await consume_all(jetstream, namespace, total) == list(range(1, total + 1))
    except BaseException:
        print(log.read_text())
        raise
    finally:
        writer.cancel()
        publisher.stop()
        await proxy.cut()
        await store.close()


async def test_replicas_publishing_at_once_still_deliver_each_event_once(
    make_url: UrlFactory, namespace: Namespace, jetstream: JetStreamContext, tmp_path: Path
) -> None:
    """Three publishers race on one log; Nats-Expected-Last-Sequence lets one win each event."""
    total = 150
    database = make_url()
    store = await MetadataStore.open(database)
    log = tmp_path / "publishers.log"
    publishers = [Publisher(database, NATS_URL, namespace, log) for _ in range(3)]
    for publisher in publishers:
        publisher.start()
    try:
        await write_events(store, total, pause=0.005)
        await until(
            lambda: _at_least(jetstream, namespace.stream, total), 90, f"all {total} events"
        )
        await asyncio.sleep(1)
        assert await stream_size(jetstream, namespace.stream) == total
        assert await consume_all(jetstream, namespace, total) == list(range(1, total + 1))
    except BaseException:
        print(log.read_text())
        raise
    finally:
        for publisher in publishers:
            publisher.stop()
        await store.close()


async def _at_least(js: JetStreamContext, stream: str, n: int) -> bool:
    return await stream_size(js, stream) >= n
