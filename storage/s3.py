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
under 8 GiB, 128 MiB only past 120 GiB). A part shorter than its span is the
tail that ``close()`` flushed; the next writer loads it back (it is smaller
than one part) and overwrites it once it is full, so every part but the last
is at least S3's 5 MiB minimum.

Commit verifies the hashes first, then composes the parts server-side
(UploadPartCopy + CompleteMultipartUpload, or one CopyObject) straight into
``blobs/sha256/<hex>``: S3 makes the object visible only when the multipart
upload completes, so a reader never sees partial content, and a failed compose
is aborted and leaves nothing. Each source carries ``x-amz-copy-source-if-match``
with the ETag we hashed, so parts replaced behind our back fail the compose.
Aliases are written before the blob, so a visible blob always resolves by
blake3.

Retries live in ``_call`` alone: throttling (SlowDown, 429/503), other 5xx,
timeouts and dropped connections are retried with jittered exponential
backoff. Every call this driver makes is idempotent (PUTs to fixed keys, GET,
HEAD, LIST, DELETE, a compose that rewrites the same bytes), so each is safe to
repeat. What is still failing afterwards becomes ``StorageUnavailable``.
"""

from __future__ import annotations

import io
import os
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import anyio
import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from oci.digest import Digest, Hasher, new_hasher
from oci.errors import Corruption, SizeInvalid
from storage.base import BlobInfo
from storage.errors import BlobNotFound, DigestMismatch, StorageUnavailable, UploadNotFound

__all__ = ["S3BlobStore"]

_T = TypeVar("_T")

MiB = 1024 * 1024
_BASE_PART = 8 * MiB  # >= S3's 5 MiB minimum for every part but the last
_PARTS_PER_TIER = 1000
_TIERS = 5  # 8, 16, 32, 64, 128 MiB
_MAX_PARTS = 10_000  # S3 multipart limit
_READ_CHUNK = 1 * MiB
_THREAD_HASH_MIN = 64 * 1024  # smaller chunks hash on the loop; a thread hop costs more
_ATTEMPTS = 6
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 5.0
_UPLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
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
    return StorageUnavailable(f"object store: {what} failed ({detail})")


@dataclass(slots=True)
class _Part:
    offset: int
    size: int
    etag: str


@dataclass(slots=True)
class _HashState:
    """sha256 + blake3 of the first ``offset`` staged bytes, ending in part ``etag``."""

    sha256: Hasher
    blake3: Hasher
    offset: int = 0
    etag: str | None = None

    async def update(self, data: bytes | memoryview) -> None:
        if len(data) >= _THREAD_HASH_MIN:
            await anyio.to_thread.run_sync(self._update, data)
        else:
            self._update(data)
        self.offset += len(data)

    def _update(self, data: bytes | memoryview) -> None:
        self.sha256.update(data)
        self.blake3.update(data)


def _fresh_hashes() -> _HashState:
    return _HashState(new_hasher("sha256"), new_hasher("blake3"))


def _credentials() -> tuple[str | None, str | None, str | None]:
    env = os.environ
    if env.get("ARTIFACT_STORE_S3_ACCESS_KEY"):
        return env["ARTIFACT_STORE_S3_ACCESS_KEY"], env.get("ARTIFACT_STORE_S3_SECRET_KEY"), None
    return env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"), env.get("AWS_SESSION_TOKEN")


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
        # Hash state of sessions this process closed; valid only while it matches the bucket.
        self._hash_cache: dict[str, _HashState] = {}

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
            result = self._client.put_object(
                self._bucket, key, io.BytesIO(data), len(data), metadata=metadata  # type: ignore[arg-type]
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

    async def _page(self, prefix: str, start_after: str | None) -> list[tuple[str, int, str, float]]:
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
            stat = await self._call(lambda: self._client.stat_object(self._bucket, key), f"HEAD {key}")
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

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        info = await self.stat(digest)
        if offset < 0 or offset > info.size or (length is not None and length < 0):
            raise ValueError(f"range {offset}+{length} outside blob of {info.size} bytes")
        if length is None or offset + length > info.size:
            length = info.size - offset
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
            aliases += [self._key("blobs", "sha512", sha512.hex), self._key("blobs", "sha512-of", hex_)]
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

    async def create_bucket(self) -> None:
        """Create the bucket if it is missing (operators and tests; the registry only reads)."""

        def create() -> None:
            if not self._client.bucket_exists(self._bucket):
                self._client.make_bucket(self._bucket)

        await self._call(create, f"create bucket {self._bucket}")

    # -- uploads ----------------------------------------------------------------------

    def _check_id(self, upload_id: str) -> None:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise UploadNotFound(f"invalid upload id {upload_id!r}", detail={"upload": upload_id})

    async def _staged(self, upload_id: str) -> tuple[list[_Part], bool]:
        """The session's parts in order, and whether the session exists at all."""
        prefix = self._upload_key(upload_id)
        parts: list[_Part] = []
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
            if part.offset != expected or start != part.offset or part.size > span or (
                not last and part.size != span
            ):
                raise Corruption(f"object store: upload {upload_id} has a gap at {expected}")
            expected += part.size
        return parts, exists

    async def upload(self, upload_id: str) -> _S3Writer:
        self._check_id(upload_id)
        parts, exists = await self._staged(upload_id)
        if not exists:
            await self._put(self._upload_key(upload_id, "opened"), b"")
        size = sum(p.size for p in parts)
        cached = self._hash_cache.pop(upload_id, None)
        last_etag = parts[-1].etag if parts else None
        usable = cached is not None and cached.offset == size and cached.etag == last_etag
        hashes = cached if usable and cached is not None else _fresh_hashes()
        tail: _Part | None = None
        if parts and parts[-1].size < _part_span(parts[-1].offset)[1]:
            tail = parts.pop()  # short: reload it and grow it to a full part
        if not usable:
            for part in parts:
                async for chunk in await self._stream(
                    self._upload_key(upload_id, f"{part.offset:020d}"), 0, part.size
                ):
                    await hashes.update(chunk)
        buffer = bytearray()
        if tail is not None:
            async for chunk in await self._stream(
                self._upload_key(upload_id, f"{tail.offset:020d}"), 0, tail.size
            ):
                buffer += chunk
                if not usable:
                    await hashes.update(chunk)
        hashes.offset = size
        return _S3Writer(self, upload_id, parts, hashes, buffer)

    async def discard_upload(self, upload_id: str) -> None:
        self._hash_cache.pop(upload_id, None)
        if not _UPLOAD_ID.fullmatch(upload_id):
            return
        keys = [key async for key, *_ in self._walk(self._upload_key(upload_id))]
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            await self._delete(keys[i : i + 1000])

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
    """One open session: the parts already in the bucket plus at most one part in memory."""

    def __init__(
        self,
        store: S3BlobStore,
        upload_id: str,
        parts: list[_Part],
        hashes: _HashState,
        buffer: bytearray,
    ) -> None:
        self.upload_id = upload_id
        self._store = store
        self._parts = parts
        self._hashes = hashes
        self._buffer = buffer
        self._start = sum(p.size for p in parts)  # offset of the buffer's first byte
        self.offset = self._start + len(buffer)
        self._done = False

    def _live(self) -> None:
        if self._done:
            raise UploadNotFound(
                f"upload {self.upload_id} is already closed", detail={"upload": self.upload_id}
            )

    async def write(self, chunk: bytes) -> None:
        self._live()
        if self.offset + len(chunk) > MAX_BLOB_SIZE:
            raise SizeInvalid(f"blob exceeds the S3 driver's limit of {MAX_BLOB_SIZE} bytes")
        await self._hashes.update(chunk)
        view = memoryview(chunk)
        while view:
            room = _part_span(self._start)[1] - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == _part_span(self._start)[1]:
                await self._flush()
        self.offset = self._start + len(self._buffer)

    async def _flush(self) -> None:
        """Store the buffer as the part at ``_start``; a short one (close, commit) ends the writer.

        A short tail overwrites the short part of the same start that ``upload`` reloaded.
        """
        if not self._buffer:
            return
        data = bytes(self._buffer)
        self._buffer = bytearray()
        key = self._store._upload_key(self.upload_id, f"{self._start:020d}")
        etag = await self._store._put(key, data)
        self._parts.append(_Part(self._start, len(data), etag))
        self._hashes.etag = etag
        self._start += len(data)

    async def close(self) -> None:
        if self._done:
            return
        self._done = True
        await self._flush()
        self._store._hash_cache[self.upload_id] = self._hashes

    async def abort(self) -> None:
        self._done = True
        await self._store.discard_upload(self.upload_id)

    async def commit(self, expected: Digest | None = None) -> BlobInfo:
        self._live()
        self._done = True
        store = self._store
        await self._flush()
        sha256 = Digest.from_hasher("sha256", self._hashes.sha256)
        blake3 = Digest.from_hasher("blake3", self._hashes.blake3)
        info = BlobInfo(sha256, blake3, self.offset)
        aliases = {"blake3": blake3}
        if expected is not None:
            actual = {"sha256": sha256, "blake3": blake3}.get(expected.algorithm)
            if actual is None:  # sha512: a second pass over the staged parts, only on request
                actual = aliases[expected.algorithm] = await self._rehash(expected.algorithm)
            if actual != expected:
                await store.discard_upload(self.upload_id)
                raise DigestMismatch(
                    f"content has digest {actual}, not {expected}",
                    detail={"expected": str(expected), "actual": str(actual)},
                )
        # Aliases first: a visible blob must resolve by each of its digests.
        for algorithm, alias in aliases.items():
            await store._put(store._key("blobs", algorithm, alias.hex), str(sha256).encode())
        if "sha512" in aliases:
            back = store._key("blobs", "sha512-of", sha256.hex)
            await store._put(back, str(aliases["sha512"]).encode())
        if await store._head(sha256.hex) is None:
            await self._compose(sha256, blake3)
        await store.discard_upload(self.upload_id)
        return info

    async def _rehash(self, algorithm: str) -> Digest:
        hasher = new_hasher(algorithm)
        for part in self._parts:
            key = self._store._upload_key(self.upload_id, f"{part.offset:020d}")
            async for chunk in await self._store._stream(key, 0, part.size):
                await anyio.to_thread.run_sync(hasher.update, chunk)
        return Digest.from_hasher(algorithm, hasher)

    async def _compose(self, sha256: Digest, blake3: Digest) -> None:
        """Server-side copy of the parts into the blob's key; visible only once complete."""
        store = self._store
        key = store._key("blobs", "sha256", sha256.hex)
        metadata = {"x-amz-meta-blake3": str(blake3)}
        if not self._parts:
            await store._put(key, b"", metadata)
            return
        sources = [
            ComposeSource(
                store._bucket,
                store._upload_key(self.upload_id, f"{p.offset:020d}"),
                match_etag=p.etag,  # the bytes we hashed, or the compose fails
            )
            for p in self._parts
        ]
        try:
            await store._call(
                lambda: store._client.compose_object(
                    store._bucket,
                    key,
                    sources,
                    metadata=metadata,  # type: ignore[arg-type]
                ),
                f"compose {key}",
            )
        except _Missing:
            raise UploadNotFound(
                f"upload {self.upload_id} lost its staged parts", detail={"upload": self.upload_id}
            ) from None
