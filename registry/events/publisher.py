"""The outbox: every event of the log, delivered to NATS JetStream exactly once, in order.

Theory of operation. The log is the outbox: nothing is written twice and
no table records what was sent. The publisher's cursor (the last event
JetStream holds) is read back from the stream itself whenever it is
needed: the stream's ``last_seq`` and the ``Nats-Msg-Id`` header of that
message, which is the event's seq. A restart, a crash (even SIGKILL
between publish and ack) or a second replica therefore always agrees with
what JetStream actually stored, and no local file can go stale.

Each message is published with two headers:

- ``Nats-Msg-Id: <seq>``: a retry after a lost ack is dropped by
  JetStream's duplicate window;
- ``Nats-Expected-Last-Sequence: <stream seq of the previous event>``:
  JetStream refuses the message unless the stream still ends where this
  publisher believes it does (optimistic concurrency).

The second header is what makes N replicas safe without a lease. Two
publishers that race both try to append event n after the same stream
message; JetStream accepts exactly one, the other gets "wrong last
sequence" (or a duplicate ack), re-reads the cursor from the stream and
continues from there. A publisher that stalls for longer than the
duplicate window cannot append a stale event either, because the stream's
last sequence has moved on. So the stream holds each event once, in seq
order, whatever crashes or races; the cost of running several publishers
is only the refused attempts. Any error (timeout, disconnect, refusal)
takes the same path: back off, re-derive the cursor, go on.

The stream must be dedicated to these events (subjects ``<prefix>.>``):
a foreign message at its end has no seq header and stops the publisher
with an error. If retention (``max_age``, ``max_msgs``) ever removes the
stream's last message, the cursor is unknowable and publishing restarts
from the first event (at-least-once, logged as a warning); keep the last
message, e.g. limit by ``max_msgs_per_subject`` or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from oci.errors import OperationalError
from registry.events.view import event_bytes
from registry.events.watcher import LogWatcher
from registry.meta import EventRecord, MetadataStore

__all__ = ["OutboxPublisher", "PublisherSettings", "StreamNotDedicated"]

_log = logging.getLogger(__name__)

# JetStream's error code for a failed Nats-Expected-Last-Sequence check.
_WRONG_LAST_SEQUENCE = 10071
# ... and for adding a stream whose name exists with another config.
_STREAM_NAME_IN_USE = 10058


class StreamNotDedicated(OperationalError):
    """The JetStream stream ends with a message the outbox did not publish."""


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    nats_url: str
    # Each event goes to ``<subject_prefix>.<type>``, e.g. artifact-store.events.manifest.put.
    subject_prefix: str = "artifact-store.events"
    # None: derived from the prefix (artifact-store.events -> ARTIFACT_STORE_EVENTS),
    # so each prefix gets a stream of its own.
    stream: str | None = None
    batch: int = 256
    # Seconds; JetStream drops a repeated Nats-Msg-Id seen within this window.
    duplicate_window: float = 120.0
    ack_timeout: float = 5.0
    retry_max: float = 2.0

    @property
    def stream_name(self) -> str:
        return self.stream or re.sub(r"[^A-Za-z0-9]", "_", self.subject_prefix).upper()


@dataclass(slots=True)
class _Cursor:
    event_seq: int  # the last event the stream holds
    stream_seq: int  # that message's sequence in the stream


class _Diverged(Exception):
    """The stream is not where this publisher thought; re-derive the cursor."""


class OutboxPublisher:
    def __init__(
        self,
        store: MetadataStore,
        settings: PublisherSettings,
        watcher: LogWatcher | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._watcher = watcher or LogWatcher(store)
        self._owns_watcher = watcher is None
        self.published = 0
        """The last event seq known to be in the stream (for health and tests)."""

    async def run(self) -> None:
        """Publish until cancelled; survives NATS and database outages by retrying."""
        nc = await self._connect()
        try:
            js = nc.jetstream(timeout=self._settings.ack_timeout)
            delay = 0.05
            while True:
                try:
                    await self._ensure_stream(js)
                    await self._publish_from(js, await self._derive(js))
                except (
                    _Diverged,
                    nats.errors.Error,
                    OperationalError,
                    TimeoutError,
                ) as exc:
                    if isinstance(exc, StreamNotDedicated):
                        raise
                    _log.info("outbox: %s; re-reading the cursor in %.2fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._settings.retry_max)
                else:  # pragma: no cover - _publish_from only returns by raising
                    delay = 0.05
        finally:
            await nc.close()
            if self._owns_watcher:
                await self._watcher.close()

    async def _connect(self) -> Client:
        async def on_error(exc: Exception) -> None:
            _log.info("outbox: NATS connection: %s", exc)

        while True:
            try:
                client: Client = await nats.connect(
                    self._settings.nats_url,
                    name="artifact-store-outbox",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    connect_timeout=2,
                    error_cb=on_error,
                )
                return client
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                _log.info("outbox: cannot reach NATS at %s: %s", self._settings.nats_url, exc)
                await asyncio.sleep(self._settings.retry_max)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self._settings.stream_name)
            return
        except nats.js.errors.NotFoundError:
            pass
        try:
            await js.add_stream(
                name=self._settings.stream_name,
                subjects=[f"{self._settings.subject_prefix}.>"],
                duplicate_window=self._settings.duplicate_window,
            )
        except nats.js.errors.BadRequestError as exc:
            # Another replica created it first; stream_info on the next pass confirms.
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise

    async def _derive(self, js: JetStreamContext) -> _Cursor:
        """Read the cursor back from the stream: its last message's Nats-Msg-Id."""
        state = (await js.stream_info(self._settings.stream_name)).state
        if state.messages == 0:
            if state.last_seq:
                _log.warning(
                    "outbox: stream %s lost its last message; republishing from the first event",
                    self._settings.stream_name,
                )
            cursor = _Cursor(0, state.last_seq)
        else:
            message = await js.get_msg(self._settings.stream_name, seq=state.last_seq)
            msg_id = (message.headers or {}).get("Nats-Msg-Id", "")
            if not msg_id.isdecimal():
                raise StreamNotDedicated(
                    f"stream {self._settings.stream_name} ends with a message without an event seq"
                )
            cursor = _Cursor(int(msg_id), state.last_seq)
        self.published = cursor.event_seq
        return cursor

    async def _publish_from(self, js: JetStreamContext, cursor: _Cursor) -> None:
        while True:
            batch = await self._store.events(cursor.event_seq, self._settings.batch)
            if not batch:
                await self._watcher.wait_beyond(cursor.event_seq, within=30.0)
                continue
            for record in batch:
                await self._publish(js, record, cursor)

    async def _publish(self, js: JetStreamContext, record: EventRecord, cursor: _Cursor) -> None:
        headers = {
            "Nats-Msg-Id": str(record.seq),
            "Nats-Expected-Last-Sequence": str(cursor.stream_seq),
            "Content-Type": "application/json",
        }
        subject = f"{self._settings.subject_prefix}.{record.type}"
        try:
            ack = await js.publish(
                subject, event_bytes(record), stream=self._settings.stream_name, headers=headers
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                raise _Diverged(f"stream moved past {cursor.stream_seq}") from exc
            raise
        if ack.duplicate:
            raise _Diverged(f"event {record.seq} was already published")
        cursor.event_seq, cursor.stream_seq = record.seq, ack.seq
        self.published = record.seq
