"""The rules that decide whether a change to the metadata is allowed.

Legal holds, immutable tags and their overrides, and retention: each is
asked inside the write transaction (``MetadataStore.transaction()``),
before the event is appended, so a decision and the change it allows
cannot be separated by another writer. A ``check_*`` only checks (it
raises or returns nothing); a ``decide_*`` also returns the events its
decision records (``TagOverridden``), for the caller to append.
"""

from __future__ import annotations

from registry.rules.protection import ImmutableTags, Rules, held_denial, never_immutable
from registry.rules.retention import check_retention_extension, native_retention

__all__ = [
    "ImmutableTags",
    "Rules",
    "check_retention_extension",
    "held_denial",
    "native_retention",
    "never_immutable",
]
