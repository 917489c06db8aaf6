"""Event delivery latency: from a committed metadata write to a JetStream consumer.

Usage: ``python -m bench.events [--events N] [--database URL] [--nats-url URL]
[--no-notify]``.

One process holds the store, the outbox publisher and an ordered JetStream
consumer, so one clock times both ends. Each event is written on its own
(a commit, then ``notify()`` as the server's write middleware does) and
the clock stops when the consumer holds that event's message; the next
write starts only then, so this is latency, not throughput. ``--no-notify``
leaves the wake-up to the watcher's poll, which is what a write from
another process (a replica, the CLI) sees. Uses its own stream, deleted
at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import nats

from oci.digest import Digest
from registry.events import LogWatcher, OutboxPublisher, PublisherSettings
from registry.meta import MetadataStore
from registry.rules import Rules
from registry.service.writes import Writes
from storage.base import BlobInfo


def _blob(n: int) -> BlobInfo:
    data = f"bench event {n} {secrets.token_hex(8)}".encode()
    return BlobInfo(Digest.compute(data), Digest.compute(data, "blake3"), len(data))


async def measure(database: str, nats_url: str, count: int, notify: bool) -> list[float]:
    token = secrets.token_hex(4)
    settings = PublisherSettings(nats_url=nats_url, subject_prefix=f"artifact-store-bench.{token}")
    store = await MetadataStore.open(database)
    writes = Writes(store, Rules())
    watcher = LogWatcher(store)
    publisher = asyncio.create_task(OutboxPublisher(store, settings, watcher).run())
    nc = await nats.connect(nats_url)
    latencies: list[float] = []
    try:
        js = nc.jetstream()
        for _ in range(100):  # the publisher creates the stream on start
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.stream_info(settings.stream_name)
                break
            await asyncio.sleep(0.05)
        sub = await js.subscribe(f"{settings.subject_prefix}.>", ordered_consumer=True)
        for n in range(count + 10):
            await writes.commit_blob("bench/events", _blob(n), actor="bench")
            started = time.perf_counter()
            if notify:
                watcher.notify()
            msg = await sub.next_msg(timeout=30)
            elapsed = time.perf_counter() - started
            json.loads(msg.data)
            if n >= 10:  # the first few warm up connections and caches
                latencies.append(elapsed)
        await sub.unsubscribe()
        await js.delete_stream(settings.stream_name)
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        await nc.close()
        await watcher.close()
        await store.close()
    return latencies


def _report(label: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{label}: {len(ordered)} events, commit -> consumer "
        f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
        f"max {ordered[-1] * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--database", help="metadata URL (default: a temporary SQLite file)")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--no-notify", action="store_true", help="rely on the watcher's poll")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database or f"sqlite:///{Path(tmp) / 'meta.db'}"
        latencies = asyncio.run(
            measure(database, args.nats_url, args.events, notify=not args.no_notify)
        )
    mode = "poll only" if args.no_notify else "in-process notify"
    _report(f"{database.split(':')[0]}, {mode}", latencies)


if __name__ == "__main__":
    main()
