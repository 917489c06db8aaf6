"""The S3 driver: blobs in an S3-compatible bucket (Ceph RGW, MinIO, SeaweedFS, AWS).

This module, with ``storage._s3_upload`` (the upload writer) and
``storage._s3_retry`` (retries), is the only code that imports the S3 SDK
(``minio``). The SDK is synchronous, so every call runs in a worker thread;
the event loop never waits on the network.

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
fixed schedule (``part_span``): 8 MiB for the first 1,000 parts, doubling
every 1,000 parts up to 128 MiB, so the 10,000-part limit of a multipart upload
holds up to ~867 GiB while a writer buffers at most one part (8 MiB for blobs
under 8 GiB, 128 MiB only past 120 GiB; twice that while a part is PUT). A
part shorter than its span is the tail that ``close()`` flushed; the next
writer loads it back (it is smaller than one part) and overwrites it once it
is full, so every part but the last is at least S3's 5 MiB minimum.

Commit composes the staged parts server-side into ``blobs/sha256/<hex>``,
visible only once complete, so a reader never sees partial content (the
writer, ``storage._s3_upload``, tells how). Every call to S3 goes through
``_call``, which retries what may succeed later (``storage._s3_retry``).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import anyio
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject

from oci.digest import Digest
from oci.errors import Corruption
from storage._s3_retry import ATTEMPTS, BACKOFF_BASE, MISSING_CODES, Missing, with_retries
from storage._s3_upload import MiB, S3Writer, StagedPart, StagedParts, part_span
from storage.base import BlobInfo, check_range, check_upload_id
from storage.errors import BlobNotFound, StorageUnavailable, UploadNotFound
from storage.hashing import ContentHasher

__all__ = ["S3BlobStore"]

_T = TypeVar("_T")

_READ_CHUNK = 1 * MiB
_HEX64 = re.compile(r"[a-f0-9]{64}")


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
        return await with_retries(fn, what)

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
        except Missing:
            return None

    async def _delete(self, keys: list[str]) -> None:
        if not keys:
            return

        def delete() -> None:
            for error in self._client.remove_objects(self._bucket, [DeleteObject(k) for k in keys]):
                if error.code not in MISSING_CODES:
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
                    if failures >= ATTEMPTS:
                        raise StorageUnavailable(f"object store: GET {key} broke off") from exc
                    response.close()
                    response.release_conn()
                    await anyio.sleep(BACKOFF_BASE * failures)
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
        except Missing:
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
        except Missing:
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
        except Missing:
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

    async def _staged(self, upload_id: str) -> tuple[StagedParts, bool]:
        """The session's parts in order, and whether the session exists at all."""
        prefix = self._upload_key(upload_id)
        parts: StagedParts = []
        exists = False
        async for key, size, etag, _mtime in self._walk(prefix):
            exists = True
            name = key[len(prefix) :]
            if name.isdigit():
                parts.append(StagedPart(int(name), size, etag))
        expected = 0
        for i, part in enumerate(parts):
            start, span = part_span(part.offset)
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

    async def upload(self, upload_id: str) -> S3Writer:
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
        tail = parts.pop() if parts and parts[-1].size < part_span(parts[-1].offset)[1] else None
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
        return S3Writer(self, upload_id, parts, hashes, buffer)

    async def discard_upload(self, upload_id: str) -> None:
        self._hash_cache.pop(upload_id, None)
        try:
            check_upload_id(upload_id)
        except UploadNotFound:
            return  # an id we could never have issued has nothing staged
        keys = [key async for key, *_ in self._walk(self._upload_key(upload_id))]
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            await self._delete(keys[i : i + 1000])

    async def truncate_upload(self, upload_id: str, size: int) -> None:
        self._hash_cache.pop(upload_id, None)
        try:
            check_upload_id(upload_id)
        except UploadNotFound:
            return
        parts, _ = await self._staged(upload_id)
        # The parts past ``size`` go first, so the staged bytes stay a gapless prefix.
        gone = [self._upload_key(upload_id, f"{p.offset:020d}") for p in parts if p.offset >= size]
        for i in range(0, len(gone), 1000):  # DeleteObjects takes at most 1,000 keys
            await self._delete(gone[i : i + 1000])
        for part in parts:
            if part.offset < size < part.offset + part.size:
                key = self._upload_key(upload_id, f"{part.offset:020d}")
                kept = bytearray()
                async for chunk in await self._stream(key, 0, size - part.offset):
                    kept += chunk
                await self._put(key, bytes(kept))

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
