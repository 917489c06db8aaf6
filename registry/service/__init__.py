"""Registry operations as plain async functions over a ``Registry``; no HTTP here.

``Registry`` holds the metadata store, the blob store, the settings and the
rules, and the ``Writes`` built from them: the one write path of every
change (``writes.py``). ``blobs``, ``manifests`` and ``upload`` are the
push, pull, mount and delete operations the HTTP routes call.
"""

from __future__ import annotations

from registry.service.registry import Registry, expire_uploads, open_registry, rules_of
from registry.service.writes import Present, Writes

__all__ = ["Present", "Registry", "Writes", "expire_uploads", "open_registry", "rules_of"]
