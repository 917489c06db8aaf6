"""Open a blob store from the one string an operator configures.

    file:///var/lib/artifact-store     the filesystem driver (absolute paths only)
    /var/lib/artifact-store, ./data    the same, as a plain path
    memory://                          the memory driver (tests, throw-away servers)
    s3://bucket/prefix?endpoint=…      the S3 driver, imported only when asked for

A malformed URL raises ValueError with one line naming what is wrong, so a
typo in configuration stops the server at start-up with a readable message.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from storage.base import BlobStore

__all__ = ["open_store"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def open_store(url: str, *, cache_uploads: bool = True) -> BlobStore:
    """The store ``url`` names; ValueError if it names none.

    ``cache_uploads=False`` is passed to the filesystem driver (see
    ``FsBlobStore``); the others keep nothing in the page cache to drop.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("storage URL is empty")
    scheme = _SCHEME.match(url)
    if scheme is None or len(scheme.group(1)) == 1:  # no scheme, or a Windows drive letter
        from storage.filesystem import FsBlobStore

        return FsBlobStore(url, cache_uploads=cache_uploads)
    name = scheme.group(1).lower()
    if name == "file":
        return _file(url, cache_uploads)
    if name == "memory":
        if url.lower() not in ("memory://", "memory:"):
            raise ValueError(f"memory:// takes no host, path or query: {url!r}")
        from storage.memory import MemoryBlobStore

        return MemoryBlobStore()
    if name == "s3":
        if not urlsplit(url).netloc:
            raise ValueError(f"s3 URL needs a bucket, as s3://bucket[/prefix]: {url!r}")
        try:
            from storage.s3 import S3BlobStore
        except ModuleNotFoundError as exc:
            if exc.name not in ("storage.s3", "minio"):
                raise
            raise ValueError(f"s3:// storage is unavailable in this installation ({exc})") from None
        return S3BlobStore.from_url(url)
    raise ValueError(
        f"unknown storage URL scheme {name!r} in {url!r} (use file://, memory://, s3://)"
    )


def _file(url: str, cache_uploads: bool) -> BlobStore:
    from storage.filesystem import FsBlobStore

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"file URL names host {parts.netloc!r}; use file:///absolute/path: {url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"file URL takes no query or fragment: {url!r}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"file URL needs an absolute path, as file:///absolute/path: {url!r}")
    return FsBlobStore(path, cache_uploads=cache_uploads)
