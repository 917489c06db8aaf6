"""Events out of the registry: the NATS JetStream outbox and what the HTTP stream reads.

The ``GET /api/v1/events`` endpoint itself is ``registry.http.events`` (docs/events.md).
"""

from __future__ import annotations

from registry.events.lifecycle import EventSource, WriteNotifier, running_events
from registry.events.publisher import OutboxPublisher, PublisherSettings, StreamNotDedicated
from registry.events.view import event_bytes, event_view, rfc3339
from registry.events.watcher import LogWatcher

__all__ = [
    "EventSource",
    "LogWatcher",
    "OutboxPublisher",
    "PublisherSettings",
    "StreamNotDedicated",
    "WriteNotifier",
    "event_bytes",
    "event_view",
    "rfc3339",
    "running_events",
]
