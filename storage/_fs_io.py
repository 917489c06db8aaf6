"""The filesystem driver's blocking primitives, and where OSError becomes StorageUnavailable.

The functions here block; callers run them in a worker thread through
``in_thread``, which turns an escaping ``OSError`` into ``StorageUnavailable``.
The durable ones (``put_small``, ``mkdirs``) fsync the directory they changed,
so a name they create survives a crash once they return. Shared by the store
(``storage.filesystem``) and its writer (``storage._fs_writer``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar

import anyio.to_thread

from storage.errors import StorageUnavailable

__all__ = [
    "fsync_dir",
    "in_thread",
    "mkdirs",
    "put_small",
    "read_file",
    "unavailable",
    "write_all",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_READ_CHUNK = 1024 * 1024


def unavailable(exc: OSError) -> StorageUnavailable:
    return StorageUnavailable(f"filesystem: {exc.strerror or exc} ({exc.filename})")


async def in_thread(call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run a blocking call in a worker thread; an OSError escaping it -> StorageUnavailable.

    A missing file that means "no such blob/upload" is converted inside ``call``.
    """
    try:
        return await anyio.to_thread.run_sync(lambda: call(*args, **kwargs))
    except OSError as exc:
        raise unavailable(exc) from exc


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mkdirs(path: Path) -> None:
    """``mkdir -p`` that makes each new directory durable by syncing its parent."""
    if path.is_dir():
        return
    mkdirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    fsync_dir(path.parent)


def put_small(path: Path, content: str) -> None:
    """Atomically replace ``path`` with ``content``, durable on return."""
    mkdirs(path.parent)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_dir(path.parent)


async def read_file(file: BinaryIO, offset: int, count: int) -> AsyncIterator[bytes]:
    """Stream ``count`` bytes of ``file`` from ``offset``; owns and closes ``file``.

    An unbuffered file object rather than a bare fd: if the caller drops the
    iterator unstarted, garbage collection still closes it.
    """
    try:
        while count > 0:
            chunk = await in_thread(os.pread, file.fileno(), min(_READ_CHUNK, count), offset)
            if not chunk:
                raise StorageUnavailable(f"filesystem: {file.name} shrank while being read")
            offset += len(chunk)
            count -= len(chunk)
            yield chunk
    finally:
        file.close()
