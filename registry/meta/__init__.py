"""Registry metadata: the append-only event log and the views projected from it.

Only ``MetadataStore`` writes; it appends one event per change and applies
it through ``projector.apply`` in the same transaction (ADR-0002).
"""

from __future__ import annotations

from registry.meta.events import EVENT_TYPES, Event, decode, encode_payload, to_json
from registry.meta.records import BlobRecord, EventRecord, ManifestRecord, UploadRecord
from registry.meta.store import MetadataStore

__all__ = [
    "EVENT_TYPES",
    "BlobRecord",
    "Event",
    "EventRecord",
    "ManifestRecord",
    "MetadataStore",
    "UploadRecord",
    "decode",
    "encode_payload",
    "to_json",
]
