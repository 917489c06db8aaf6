"""The S3 driver: blobs in an S3-compatible bucket (Ceph RGW, MinIO, SeaweedFS, AWS).

This is the one module that imports the S3 SDK (``minio``). The SDK is
synchronous, so every call runs in a worker thread; the event loop never waits
on the network.

Key layout under ``s3://<bucket>/<prefix>``::

    <prefix>/
    ├── blobs/
    │   ├── sha256/<hex>            the bytes; user metadata x-amz-meta-blake3
    │   ├── blake3/<hex>            alias: body "sha256:<hex>"
    │   ├── sha512/<hex>            alias: body "sha256:<hex>" (only when a client used sha512)
    │   └── sha512-of/<sha256hex>   back-pointer: body "sha512:<hex>", so delete finds the alias
    ├── health                      rewritten by check(): proves the bucket takes writes
    └── uploads/<upload_id>/
        ├── opened                  empty; marks a session that has no bytes yet
        └── <offset, 20 digits>     staged bytes, one object per part, contiguous

Theory of operation. An upload session lives in the bucket, not in a process:
its bytes are plain objects, one per part, named by their start offset. Any
process lists ``uploads/<id>/`` to learn the staged size; a process that holds
no hash state for the session (or whose state does not match the staged size
and the last part's ETag) re-hashes the staged parts, streaming. Parts follow a
fixed schedule (``_part_span``): 8 MiB for the first 1,000 parts, doubling
every 1,000 parts up to 128 MiB, so the 10,000-part limit of a multipart upload
holds up to ~867 GiB while a writer buffers at most one part (8 MiB for blobs
under 8 GiB, 128 MiB only past 120 GiB; twice that while a part is PUT). A
part shorter than its span is the tail that ``close()`` flushed; the next
writer loads it back (it is smaller than one part) and overwrites it once it
is full, so every part but the last is at least S3's 5 MiB minimum.

Commit verifies the hashes first, then composes the parts server-side
(UploadPartCopy per part, eight at a time, then CompleteMultipartUpload) straight into
``blobs/sha256/<hex>``: S3 makes the object visible only when the multipart
upload completes, so a reader never sees partial content, and a failed compose
is aborted and leaves nothing. Each copy carries ``x-amz-copy-source-if-match``
with the ETag we hashed, so parts replaced behind our back fail the compose.
Aliases are written before the blob (and removed again if the compose fails),
so a visible blob always resolves by each of its names.

Retries live in ``_call`` alone: throttling (SlowDown, 429/503), other 5xx,
timeouts and dropped connections are retried with jittered exponential
backoff. Every call this driver makes is idempotent (PUTs to fixed keys, GET,
HEAD, LIST, DELETE, a compose that rewrites the same bytes), so each is safe to
repeat. What is still failing afterwards becomes ``StorageUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import anyio
import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import DictType

from oci.digest import Digest
from oci.errors import Corruption, SizeInvalid
from storage._tasks import finish_quietly
from storage.base import BlobInfo, check_range, check_upload_id
from storage.errors import BlobNotFound, DigestMismatch, StorageUnavailable, UploadNotFound
from storage.hashing import ContentHasher, hash_stream

__all__ = ["S3BlobStore"]

_T = TypeVar("_T")

MiB = 1024 * 1024
_BASE_PART = 8 * MiB  # >= S3's 5 MiB minimum for every part but the last
_PARTS_PER_TIER = 1000
_TIERS = 5  # 8, 16, 32, 64, 128 MiB
_MAX_PARTS = 10_000  # S3 multipart limit
_READ_CHUNK = 1 * MiB
# Part copies a commit keeps in flight (see ``_copy_parts``).
_COPIES = 8
_CACHE_MAX = 4096  # hash states kept for closed sessions (a few KiB each)
_ATTEMPTS = 6
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 5.0
_HEX64 = re.compile(r"[a-f0-9]{64}")
_RETRY_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
     "ServiceUnavailable", "InternalError", "RequestTimeout", "OperationAborted"}
)  # fmt: skip
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchUpload"})


def _part_span(offset: int) -> tuple[int, int]:
    """(start, size) of the part that holds byte ``offset``: the fixed part schedule."""
    start = 0
    for tier in range(_TIERS):
        size = _BASE_PART << tier
        end = start + _PARTS_PER_TIER * size
        if offset < end or tier == _TIERS - 1:
            return start + (offset - start) // size * size, size
        start = end
    raise AssertionError("unreachable")


def _max_blob_size() -> int:
    tiers = sum(_PARTS_PER_TIER * (_BASE_PART << t) for t in range(_TIERS - 1))
    return tiers + (_MAX_PARTS - _PARTS_PER_TIER * (_TIERS - 1)) * (_BASE_PART << (_TIERS - 1))


MAX_BLOB_SIZE = _max_blob_size()


class _Missing(Exception):
    """The key does not exist (NoSuchKey); callers decide what absence means."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in _RETRY_CODES or exc.response.status in _RETRY_STATUS
    if isinstance(exc, ServerError):
        return exc.status_code in _RETRY_STATUS
    if isinstance(exc, InvalidResponseError):  # a proxy's HTML 502/503 page
        return getattr(exc, "_code", 0) in _RETRY_STATUS
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


def _translate(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, S3Error) and exc.code in _MISSING_CODES:
        return _Missing(what)
    detail = exc.code if isinstance(exc, S3Error) else type(exc).__name__
    if isinstance(exc, ServerError):  # an error without an XML body, e.g. to HEAD
        detail = f"HTTP {exc.status_code}"
    return StorageUnavailable(f"object store: {what} failed ({detail})")


@dataclass(slots=True)
class _Part:
    offset: int
    size: int
    etag: str


_Parts = list[_Part]  # the class body's ``list`` method shadows the builtin there


def _credentials() -> tuple[str | None, str | None, str | None]:
    env = os.environ
    if env.get("ARTIFACT_STORE_S3_ACCESS_KEY"):
        return env["ARTIFACT_STORE_S3_ACCESS_KEY"], env.get("ARTIFACT_STORE_S3_SECRET_KEY"), None
    return (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
        env.get("AWS_SESSION_TOKEN"),
    )


class S3BlobStore:
    """A BlobStore over one bucket and key prefix; safe to share between tasks and processes."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str = "https://s3.amazonaws.com",
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        redirect: bool = True,
    ) -> None:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"S3 endpoint must be http(s)://host[:port], got {endpoint!r}")
        # One place for retries (_call): the pool itself never retries.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10.0, read=300.0), maxsize=16, retries=False
        )
        self._client = Minio(
            url.netloc,
            access_key=access_key,
            secret_key=secret_key,
            session_token=session_token,
            secure=url.scheme == "https",
            region=region,
            http_client=http,
        )
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._redirect = redirect
        # Hash state of sessions this process closed, with the ETag of the last part it
        # covers: trusted only while the bucket still holds exactly those bytes.
        self._hash_cache: dict[str, tuple[ContentHasher, str | None]] = {}

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """``s3://bucket/prefix?endpoint=http://host:9000&region=us-east-1[&redirect=false]``.

        Credentials come from the environment, never the URL (URLs end up in logs):
        ARTIFACT_STORE_S3_ACCESS_KEY / ARTIFACT_STORE_S3_SECRET_KEY, else the AWS_* variables.
        """
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        access_key, secret_key, token = _credentials()
        return cls(
            parts.netloc,
            parts.path,
            endpoint=query.get("endpoint", "https://s3.amazonaws.com"),
            region=query.get("region", "us-east-1"),
            access_key=access_key,
            secret_key=secret_key,
            session_token=token,
            redirect=query.get("redirect", "true").lower() not in ("0", "false", "no"),
        )

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self._bucket}/{self._prefix})"

    # -- the one place that talks to S3 -------------------------------------------------

    async def _call(self, fn: Callable[[], _T], what: str) -> _T:
        delay = _BACKOFF_BASE
        for attempt in range(_ATTEMPTS):
            try:
                return await anyio.to_thread.run_sync(fn)
            except Exception as exc:
                if attempt == _ATTEMPTS - 1 or not _retryable(exc):
                    raise _translate(exc, what) from exc
            await anyio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, _BACKOFF_CAP)
        raise AssertionError("unreachable")

    def _key(self, *parts: str) -> str:
        return self._prefix + "/".join(parts)

    def _upload_key(self, upload_id: str, name: str = "") -> str:
        return self._key("uploads", upload_id, name)

    async def _put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
        def put() -> str:
            # part_size >= len: one PutObject, never the SDK's own threaded multipart upload.
            result = self._client.put_object(
                self._bucket,
                key,
                io.BytesIO(data),
                len(data),
                metadata=metadata,  # type: ignore[arg-type]
                part_size=max(len(data), 5 * MiB),
            )
            return str(result.etag)

        return await self._call(put, f"PUT {key}")

    async def _get_small(self, key: str) -> bytes | None:
        def get() -> bytes:
            response = self._client.get_object(self._bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        try:
            return await self._call(get, f"GET {key}")
        except _Missing:
            return None

    async def _delete(self, keys: list[str]) -> None:
        if not keys:
            return

        def delete() -> None:
            for error in self._client.remove_objects(self._bucket, [DeleteObject(k) for k in keys]):
                if error.code not in _MISSING_CODES:
                    raise StorageUnavailable(f"object store: DELETE {error.name} ({error.code})")

        await self._call(delete, f"DELETE {len(keys)} objects")

    async def _page(
        self, prefix: str, start_after: str | None
    ) -> list[tuple[str, int, str, float]]:
        """One ListObjectsV2 page: (key, size, etag, mtime), resumable after any key."""

        def page() -> list[tuple[str, int, str, float]]:
            listing = self._client.list_objects(
                self._bucket, prefix=prefix, recursive=True, start_after=start_after
            )
            out = []
            for obj in listing:
                mtime = obj.last_modified.timestamp() if obj.last_modified else 0.0
                out.append((str(obj.object_name), obj.size or 0, obj.etag or "", mtime))
                if len(out) == 1000:  # one page: stop before the generator fetches the next
                    break
            return out

        return await self._call(page, f"LIST {prefix}")

    async def _walk(self, prefix: str) -> AsyncIterator[tuple[str, int, str, float]]:
        start_after: str | None = None
        while True:
            page = await self._page(prefix, start_after)
            for item in page:
                yield item
            if len(page) < 1000:
                return
            start_after = page[-1][0]

    async def _stream(self, key: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        """Ranged GET in ~1 MiB chunks; a dropped connection resumes where it broke off."""
        response = await self._open(key, offset, length)
        return self._drain(response, key, offset, length)

    async def _open(self, key: str, offset: int, length: int | None) -> urllib3.BaseHTTPResponse:
        def get() -> urllib3.BaseHTTPResponse:
            return self._client.get_object(self._bucket, key, offset=offset, length=length or 0)

        return await self._call(get, f"GET {key}")

    async def _drain(
        self, response: urllib3.BaseHTTPResponse, key: str, offset: int, remaining: int | None
    ) -> AsyncIterator[bytes]:
        failures = 0
        try:
            while remaining is None or remaining > 0:
                want = _READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining)
                try:
                    chunk = await anyio.to_thread.run_sync(response.read, want)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    failures += 1
                    if failures >= _ATTEMPTS:
                        raise StorageUnavailable(f"object store: GET {key} broke off") from exc
                    response.close()
                    response.release_conn()
                    await anyio.sleep(_BACKOFF_BASE * failures)
                    response = await self._open(key, offset, remaining)
                    continue
                if not chunk:
                    if remaining is not None:
                        raise Corruption(f"object store: {key} ended {remaining} bytes early")
                    return
                offset += len(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            response.close()
            response.release_conn()

    # -- blobs ------------------------------------------------------------------------

    async def _resolve(self, digest: Digest) -> str:
        """The sha256 hex that ``digest`` names; BlobNotFound when no alias records it."""
        if digest.algorithm == "sha256":
            return digest.hex
        body = await self._get_small(self._key("blobs", digest.algorithm, digest.hex))
        if body is None:
            raise BlobNotFound(f"blob {digest} not found", detail={"digest": str(digest)})
        return Digest.parse(body.decode()).hex

    async def _head(self, sha256_hex: str) -> BlobInfo | None:
        key = self._key("blobs", "sha256", sha256_hex)
        try:
            stat = await self._call(
                lambda: self._client.stat_object(self._bucket, key), f"HEAD {key}"
            )
        except _Missing:
            return None
        blake3 = stat.metadata.get("x-amz-meta-blake3") if stat.metadata else None
        if not blake3:
            raise Corruption(f"object store: {key} carries no blake3 metadata")
        return BlobInfo(Digest("sha256", sha256_hex), Digest.parse(blake3), stat.size or 0)

    async def stat(self, digest: Digest) -> BlobInfo:
        info = await self._head(await self._resolve(digest))
        if info is None:
            raise BlobNotFound(f"blob {digest} not found", detail={"digest": str(digest)})
        return info

    async def modified(self, digest: Digest) -> float:
        key = self._key("blobs", "sha256", await self._resolve(digest))
        try:
            stat = await self._call(
                lambda: self._client.stat_object(self._bucket, key), f"HEAD {key}"
            )
        except _Missing:
            raise BlobNotFound(f"blob {digest} not found", detail={"digest": str(digest)}) from None
        return 0.0 if stat.last_modified is None else stat.last_modified.timestamp()

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        info = await self.stat(digest)
        length = check_range(info.size, offset, length)
        if length == 0:
            return _empty()
        key = self._key("blobs", "sha256", info.sha256.hex)
        try:
            return await self._stream(key, offset, length)
        except _Missing:
            raise BlobNotFound(f"blob {digest} not found", detail={"digest": str(digest)}) from None

    async def delete(self, digest: Digest) -> None:
        info = await self.stat(digest)
        hex_ = info.sha256.hex
        # The blob goes first: once it is gone no reader resolves an alias to it.
        await self._delete([self._key("blobs", "sha256", hex_)])
        aliases = [self._key("blobs", "blake3", info.blake3.hex)]
        back = await self._get_small(self._key("blobs", "sha512-of", hex_))
        if back is not None:
            sha512 = Digest.parse(back.decode())
            aliases += [
                self._key("blobs", "sha512", sha512.hex),
                self._key("blobs", "sha512-of", hex_),
            ]
        await self._delete(aliases)

    async def list(self) -> AsyncIterator[BlobInfo]:
        prefix = self._key("blobs", "sha256", "")
        async for key, _size, _etag, _mtime in self._walk(prefix):
            name = key[len(prefix) :]
            if not _HEX64.fullmatch(name):
                continue
            info = await self._head(name)  # blake3 lives in metadata, which LIST does not return
            if info is not None:  # deleted since the page was listed
                yield info

    async def redirect_url(self, digest: Digest, expires_in: float) -> str | None:
        if not self._redirect:
            return None
        info = await self.stat(digest)
        key = self._key("blobs", "sha256", info.sha256.hex)
        expires = timedelta(seconds=max(1, min(int(expires_in), 7 * 24 * 3600)))
        return await self._call(
            lambda: self._client.presigned_get_object(self._bucket, key, expires=expires),
            f"presign {key}",
        )

    async def check(self) -> None:
        if not await self._call(lambda: self._client.bucket_exists(self._bucket), "HEAD bucket"):
            raise StorageUnavailable(f"object store: bucket {self._bucket!r} does not exist")
        await self._put(self._key("health"), b"ok")  # the contract asks: writable now?

    async def create_bucket(self) -> None:
        """Create the bucket if it is missing (operators and tests; the registry only reads)."""

        def create() -> None:
            if not self._client.bucket_exists(self._bucket):
                self._client.make_bucket(self._bucket)

        await self._call(create, f"create bucket {self._bucket}")

    # -- uploads ----------------------------------------------------------------------

    async def _staged(self, upload_id: str) -> tuple[_Parts, bool]:
        """The session's parts in order, and whether the session exists at all."""
        prefix = self._upload_key(upload_id)
        parts: _Parts = []
        exists = False
        async for key, size, etag, _mtime in self._walk(prefix):
            exists = True
            name = key[len(prefix) :]
            if name.isdigit():
                parts.append(_Part(int(name), size, etag))
        expected = 0
        for i, part in enumerate(parts):
            start, span = _part_span(part.offset)
            last = i == len(parts) - 1
            if (
                part.offset != expected
                or start != part.offset
                or part.size > span
                or (not last and part.size != span)
            ):
                raise Corruption(f"object store: upload {upload_id} has a gap at {expected}")
            expected += part.size
        return parts, exists

    async def upload(self, upload_id: str) -> _S3Writer:
        check_upload_id(upload_id)
        parts, exists = await self._staged(upload_id)
        if not exists:
            await self._put(self._upload_key(upload_id, "opened"), b"")
        size = sum(p.size for p in parts)
        cached, etag = self._hash_cache.pop(upload_id, (None, None))
        if cached is not None and (
            cached.size != size or etag != (parts[-1].etag if parts else None)
        ):
            cached = None  # another process wrote since: the bucket wins
        hashes = cached or ContentHasher()
        tail = parts.pop() if parts and parts[-1].size < _part_span(parts[-1].offset)[1] else None
        buffer = bytearray()
        for part in [*parts, tail] if tail else parts:
            if cached is not None and part is not tail:
                continue
            key = self._upload_key(upload_id, f"{part.offset:020d}")
            async for chunk in await self._stream(key, 0, part.size):
                if cached is None:
                    await hashes.update(chunk)
                if part is tail:  # short: reload it, to grow it into a full part
                    buffer += chunk
        return _S3Writer(self, upload_id, parts, hashes, buffer)

    async def discard_upload(self, upload_id: str) -> None:
        self._hash_cache.pop(upload_id, None)
        try:
            check_upload_id(upload_id)
        except UploadNotFound:
            return  # an id we could never have issued has nothing staged
        keys = [key async for key, *_ in self._walk(self._upload_key(upload_id))]
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            await self._delete(keys[i : i + 1000])

    async def staged_size(self, upload_id: str) -> int:
        try:
            check_upload_id(upload_id)
        except UploadNotFound:
            return 0
        parts, _ = await self._staged(upload_id)
        return sum(p.size for p in parts)

    async def list_uploads(self) -> AsyncIterator[tuple[str, int, float]]:
        prefix = self._key("uploads", "")
        current: tuple[str, int, float] | None = None
        async for key, size, _etag, mtime in self._walk(prefix):
            upload_id, _, name = key[len(prefix) :].partition("/")
            part_size = size if name.isdigit() else 0
            if current is not None and current[0] == upload_id:
                current = (upload_id, current[1] + part_size, max(current[2], mtime))
                continue
            if current is not None:
                yield current
            current = (upload_id, part_size, mtime)
        if current is not None:
            yield current


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


class _S3Writer:
    """One open session: full parts already in the bucket, one filling in memory, one being PUT.

    The part in memory is hashed as a whole when it is stored, one thread hop
    per part rather than one per request-body piece; the bytes reloaded into
    it by ``upload`` (a short tail part) are hashed already. Its PUT runs
    while the next part arrives (one deep: the next flush, close and commit
    wait for it, and its error surfaces there), so the request body keeps
    flowing while the object store works. (A task, not a task group: a
    writer outlives any one call. The server runs on asyncio.)
    """

    def __init__(
        self,
        store: S3BlobStore,
        upload_id: str,
        parts: list[_Part],
        hashes: ContentHasher,
        buffer: bytearray,
    ) -> None:
        self.upload_id = upload_id
        self._store = store
        self._parts = parts
        self._hashes: ContentHasher | None = hashes  # None once ended, or broken by a failure
        self._etag = parts[-1].etag if parts else None  # last part the hashes cover
        self._buffer = buffer
        self._hashed = len(buffer)  # the buffer's bytes before this are in the hashes
        self._start = sum(p.size for p in parts)  # offset of the buffer's first byte
        self._storing: asyncio.Future[None] | None = None  # the part being PUT, if any
        self.offset = hashes.size

    def _take(self) -> ContentHasher:
        """The hash state, for one operation: a failure midway leaves the writer unusable."""
        if self._hashes is None:
            raise UploadNotFound(
                f"upload {self.upload_id} is not open", detail={"upload": self.upload_id}
            )
        hashes, self._hashes = self._hashes, None
        return hashes

    def _key(self, offset: int) -> str:
        return self._store._upload_key(self.upload_id, f"{offset:020d}")

    async def write(self, chunk: bytes) -> None:
        if self.offset + len(chunk) > MAX_BLOB_SIZE:
            raise SizeInvalid(f"blob exceeds the S3 driver's limit of {MAX_BLOB_SIZE} bytes")
        hashes = self._take()
        view = memoryview(chunk)
        while view:
            room = _part_span(self._start)[1] - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == _part_span(self._start)[1]:
                await self._flush(hashes)
        self._hashes = hashes
        self.offset += len(chunk)

    async def _flush(self, hashes: ContentHasher) -> None:
        """Hash the buffer and store it as the part at ``_start``.

        A full part moves ``_start`` on; a short one is the tail written by close or
        commit, overwriting the short part of the same start that ``upload`` reloaded.
        """
        if not self._buffer:
            return
        await hashes.update_tail(self._buffer, self._hashed)
        data, self._buffer, self._hashed = bytes(self._buffer), bytearray(), 0
        await self._settle()  # one part in flight at a time, so parts land in order
        self._storing = asyncio.ensure_future(self._store_part(self._start, data))
        self._start += len(data)

    async def _store_part(self, start: int, data: bytes) -> None:
        etag = await self._store._put(self._key(start), data)
        self._parts.append(_Part(start, len(data), etag))
        self._etag = etag

    async def _settle(self) -> None:
        """Wait until the part in flight is stored; its error is raised here."""
        task, self._storing = self._storing, None
        if task is not None:
            await task

    async def _store_rest(self, hashes: ContentHasher) -> None:
        """Store the part in memory and wait until every part is in the bucket."""
        try:
            await self._flush(hashes)
            await self._settle()
        finally:
            await self._drain()

    async def _drain(self) -> None:
        """Wait for the part in flight whatever happens to us; its error is dropped."""
        task, self._storing = self._storing, None
        await finish_quietly(task)

    async def close(self) -> None:
        if self._hashes is None:
            await self._drain()
            return  # ended, or broken: what reached the bucket stays, to be re-hashed
        hashes = self._take()
        await self._store_rest(hashes)
        cache = self._store._hash_cache
        cache[self.upload_id] = (hashes, self._etag)
        if len(cache) > _CACHE_MAX:  # sessions resumed elsewhere or expired: forget the oldest
            del cache[next(iter(cache))]

    async def abort(self) -> None:
        self._hashes = None
        await self._drain()  # or the part in flight could land after the discard
        await self._store.discard_upload(self.upload_id)

    async def commit(self, expected: Digest | None = None) -> BlobInfo:
        hashes = self._take()
        store = self._store
        await self._store_rest(hashes)
        sha256, blake3 = hashes.sha256(), hashes.blake3()
        aliases = {"blake3": blake3}
        if expected is not None:
            if expected.algorithm == "sha512":  # a second pass, only when a client asks
                aliases["sha512"] = await hash_stream(self._staged_bytes(), "sha512")
            actual = {"sha256": sha256, **aliases}[expected.algorithm]
            if actual != expected:
                await store.discard_upload(self.upload_id)
                raise DigestMismatch(
                    f"content has digest {actual}, not {expected}",
                    detail={"expected": str(expected), "actual": str(actual)},
                )
        # Aliases first: a visible blob must resolve by each of its names.
        written = {store._key("blobs", a, d.hex): str(sha256) for a, d in aliases.items()}
        if "sha512" in aliases:
            written[store._key("blobs", "sha512-of", sha256.hex)] = str(aliases["sha512"])
        for key, body in written.items():
            await store._put(key, body.encode())
        if await store._head(sha256.hex) is None:
            try:
                await self._compose(sha256, blake3)
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    if await store._head(sha256.hex) is None:  # no racing commit made it
                        await store._delete(list(written))
                raise
        await store.discard_upload(self.upload_id)
        return BlobInfo(sha256, blake3, hashes.size)

    async def _copy_parts(self, key: str, upload: str, what: str) -> list[Part]:
        """UploadPartCopy of every staged part into ``upload``, ``_COPIES`` at a time.

        Each copy is one request the object store serves on its own, so one
        at a time leaves it idle between them. The first failure stops the
        workers and is raised (unwrapped, as a StorageUnavailable).
        """
        store, client, bucket = self._store, self._store._client, self._store._bucket
        etags: list[str] = [""] * len(self._parts)
        todo = iter(enumerate(self._parts))
        errors: list[Exception] = []

        async def worker() -> None:
            for index, part in todo:  # shared: each part is taken by one worker
                if errors:
                    return
                source = ComposeSource(
                    bucket,
                    self._key(part.offset),
                    match_etag=part.etag,  # the bytes we hashed, or the copy fails
                )
                headers: DictType = dict(source.gen_copy_headers())
                copy = partial(client._upload_part_copy, bucket, key, upload, index + 1, headers)
                try:
                    etags[index], _ = await store._call(copy, what)
                except Exception as exc:  # re-raised below, unwrapped
                    errors.append(exc)
                    return

        async with anyio.create_task_group() as group:
            for _ in range(min(_COPIES, len(self._parts))):
                group.start_soon(worker)
        if errors:
            raise errors[0]
        return [Part(number, etag) for number, etag in enumerate(etags, start=1)]

    async def _staged_bytes(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            async for chunk in await self._store._stream(self._key(part.offset), 0, part.size):
                yield chunk

    async def _compose(self, sha256: Digest, blake3: Digest) -> None:
        """Server-side copy of the parts into the blob's key; visible only once complete.

        The SDK's compose_object re-stats every source and retries only as a whole, so
        one throttled request among 10,000 part copies would start it over: we drive
        the same four S3 calls ourselves, each retried on its own.
        """
        store, client, bucket = self._store, self._store._client, self._store._bucket
        key = store._key("blobs", "sha256", sha256.hex)
        metadata = {"x-amz-meta-blake3": str(blake3)}
        if not self._parts:
            await store._put(key, b"", metadata)
            return
        what = f"compose {key}"
        upload = await store._call(
            lambda: client._create_multipart_upload(bucket, key, dict(metadata)), what
        )
        try:
            done = await self._copy_parts(key, upload, what)
            await store._call(
                lambda: client._complete_multipart_upload(bucket, key, upload, done), what
            )
        except BaseException:
            with anyio.CancelScope(shield=True):  # never leave an incomplete upload behind
                with contextlib.suppress(Exception):
                    await store._call(
                        lambda: client._abort_multipart_upload(bucket, key, upload), what
                    )
            raise
