"""The one JSON shape of an event, shared by the HTTP stream and the NATS outbox.

Decision on bytes: a ``manifest.put`` payload does not carry the manifest
body. Bodies may be up to 4 MiB, NATS refuses messages over its
``max_payload`` (1 MiB by default), and every consumer that needs the
body can fetch it by digest from ``/v2/<repository>/manifests/<digest>``,
which is the authoritative, verifiable copy. The payload keeps ``digest``,
``media_type`` and adds ``size`` (the body's length in bytes). Any other
bytes field an event type may grow is rendered base64 by
``registry.meta.to_json``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from registry.meta import EventRecord, to_json
from registry.meta.events import ManifestPut

__all__ = ["event_bytes", "event_view", "rfc3339"]


def rfc3339(ts: dt.datetime) -> str:
    """UTC with a ``Z`` suffix (RFC 3339 §5.6); a naive timestamp is read as UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def event_view(record: EventRecord) -> dict[str, Any]:
    payload = to_json(record.event)
    # ``type`` is already top-level; repeating it in the payload helps no one.
    payload.pop("type", None)
    if isinstance(record.event, ManifestPut):
        payload.pop("body", None)
        payload["size"] = len(record.event.body)
    return {
        "seq": record.seq,
        "ts": rfc3339(record.ts),
        "actor": record.actor,
        "repository": record.repository,
        "type": record.type,
        "payload": payload,
    }


def event_bytes(record: EventRecord) -> bytes:
    """Compact UTF-8 JSON of ``event_view``: the NATS message body and one SSE ``data:`` line."""
    return json.dumps(event_view(record), separators=(",", ":"), sort_keys=True).encode()
