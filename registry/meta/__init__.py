"""Registry metadata: the append-only event log and the views projected from it.

``log`` appends events (the only code that does) and reads them; the
projector folds each appended event into the views in the same
transaction (ADR-0002); ``queries`` and ``holds`` read the views, and the
``*_queries`` modules hold the statements of the features that scan them
(garbage collection, retention, verification, usage). ``MetadataStore``
owns the engine: ``transaction()`` is the one write path.
"""

from __future__ import annotations

from registry.meta.events import EVENT_TYPES, Event, decode, encode_payload, to_json
from registry.meta.records import (
    BlobRecord,
    EventRecord,
    HoldRecord,
    ManifestRecord,
    UploadRecord,
)
from registry.meta.store import MetadataStore, Transaction

__all__ = [
    "EVENT_TYPES",
    "BlobRecord",
    "Event",
    "EventRecord",
    "HoldRecord",
    "ManifestRecord",
    "MetadataStore",
    "Transaction",
    "UploadRecord",
    "decode",
    "encode_payload",
    "to_json",
]
