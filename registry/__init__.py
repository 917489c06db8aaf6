"""artifact-store's registry, usable as a library: the public surface is what ``__all__`` lists.

``open_embedded`` opens a registry on a data directory (or on database and
storage URLs) and yields an ``EmbeddedRegistry``: push and pull blobs and
manifests, publish and read native artifacts, read the event log, and get
the ASGI application to mount elsewhere. ``create_app`` builds that
application from ``Settings`` (``load_settings`` reads them as the server
does). The result types are the ones those methods return. Every other
module of this package is internal and may change without notice
(docs/embedding.md); ``oci`` and ``storage`` are libraries of their own.

The names are imported on first use (``__getattr__``), not with the
package: every ``registry.*`` import runs this module first, and the
command line should not pay for the web application to print its help.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oci.digest import Digest
    from oci.native import NativeFile, NativeManifest
    from registry.config import Settings, load_settings
    from registry.embedded import EmbeddedRegistry, open_embedded
    from registry.http.app import create_app
    from registry.meta.records import EventRecord, ManifestRecord
    from registry.native.artifacts import Artifact
    from storage.base import BlobInfo

__all__ = [
    "Artifact",
    "BlobInfo",
    "Digest",
    "EmbeddedRegistry",
    "EventRecord",
    "ManifestRecord",
    "NativeFile",
    "NativeManifest",
    "Settings",
    "create_app",
    "load_settings",
    "open_embedded",
]

# Each public name -> the module that defines it.
_HOMES = {
    "Artifact": "registry.native.artifacts",
    "BlobInfo": "storage.base",
    "Digest": "oci.digest",
    "EmbeddedRegistry": "registry.embedded",
    "EventRecord": "registry.meta.records",
    "ManifestRecord": "registry.meta.records",
    "NativeFile": "oci.native",
    "NativeManifest": "oci.native",
    "Settings": "registry.config",
    "create_app": "registry.http.app",
    "load_settings": "registry.config",
    "open_embedded": "registry.embedded",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
