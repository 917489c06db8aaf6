"""Run the outbox publisher on its own: ``python -m registry.events --metadata URL --nats-url URL``.

A separate process is useful where the HTTP servers should not publish
(or for a sidecar); it is safe beside publishers running inside servers,
see ``registry.events.publisher``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal

from registry.events.publisher import OutboxPublisher, PublisherSettings
from registry.events.watcher import LogWatcher
from registry.meta import MetadataStore


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m registry.events", description=__doc__)
    parser.add_argument("--metadata", required=True, help="metadata database URL")
    parser.add_argument(
        "--nats-url", default=os.environ.get("ARTIFACT_STORE_NATS_URL", "nats://127.0.0.1:4222")
    )
    parser.add_argument(
        "--nats-subject",
        default=os.environ.get("ARTIFACT_STORE_NATS_SUBJECT", "artifact-store.events"),
        help="subject prefix; each event goes to <prefix>.<type>",
    )
    parser.add_argument(
        "--nats-stream",
        default=os.environ.get("ARTIFACT_STORE_NATS_STREAM") or None,
        help="stream name (default: the prefix upper-cased, e.g. ARTIFACT_STORE_EVENTS)",
    )
    parser.add_argument("--poll-interval", type=float, default=0.5, help="idle poll, seconds")
    return parser.parse_args()


async def _serve(args: argparse.Namespace) -> None:
    store = await MetadataStore.open(args.metadata)
    watcher = LogWatcher(store, max_interval=args.poll_interval)
    settings = PublisherSettings(
        nats_url=args.nats_url, subject_prefix=args.nats_subject, stream=args.nats_stream
    )
    task = asyncio.create_task(OutboxPublisher(store, settings, watcher).run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await watcher.close()
        await store.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(_arguments()))


if __name__ == "__main__":
    main()
